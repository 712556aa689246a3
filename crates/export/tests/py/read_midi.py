"""Reads a gradtone MIDI file with mido and checks it against expectations.

Usage: python3 read_midi.py FILE.mid EXPECTED.json

EXPECTED.json: {"ticks_per_step": 120,
                "tracks": ["gradtone", "conv1", ..., "alarm"],
                "notes": {"conv1": [60, 72, ...], ...},      # note-on keys, in time order
                "alarm_rows": [2, 3, 5],                      # frames with an alarm cymbal
                "tempo": 500000}
Exits 0 and prints one "OK ..." line when everything matches; raises otherwise.
"""
import json
import sys

import mido


def main() -> None:
    path, expected_path = sys.argv[1], sys.argv[2]
    with open(expected_path, encoding="utf-8") as f:
        want = json.load(f)
    mid = mido.MidiFile(path)
    tps = want["ticks_per_step"]
    assert mid.type == 1, f"MIDI type {mid.type}, want 1"
    assert mid.ticks_per_beat == 4 * tps, f"ticks per beat {mid.ticks_per_beat}, want {4 * tps}"
    names = [t.name for t in mid.tracks]
    assert names == want["tracks"], f"track names {names}, want {want['tracks']}"

    tempos = [m.tempo for m in mid.tracks[0] if m.type == "set_tempo"]
    assert tempos == [want["tempo"]], f"tempos {tempos}, want [{want['tempo']}]"

    total = 0
    for track in mid.tracks[1:-1]:
        keys = [m.note for m in track if m.type == "note_on" and m.velocity > 0]
        assert keys == want["notes"][track.name], f"{track.name}: keys {keys}, want {want['notes'][track.name]}"
        channels = {m.channel for m in track if m.type in ("note_on", "note_off")}
        assert 9 not in channels, f"{track.name} uses the drum channel"
        total += len(keys)

    alarm = mid.tracks[-1]
    now, rows = 0, []
    for m in alarm:
        now += m.time
        if m.type == "note_on" and m.velocity > 0:
            assert m.channel == 9, f"alarm on channel {m.channel + 1}, want 10"
            rows.append(now // tps)
    assert rows == want["alarm_rows"], f"alarm rows {rows}, want {want['alarm_rows']}"

    # Every note-on is closed: mido's length is the end of the longest track.
    frames = len(want["notes"][names[1]]) if names[1:-1] else 0
    print(f"OK read_midi: {len(mid.tracks)} tracks, {total} notes, {len(rows)} alarms, "
          f"{mid.length:.2f} s long, {frames} notes on the first voice")


if __name__ == "__main__":
    main()
