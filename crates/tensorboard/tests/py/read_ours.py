#!/usr/bin/env python3
"""Loads an event folder written by gradtone's EventWriter with TensorBoard's own readers.

usage: read_ours.py LOGDIR EXPECTED.json

EXPECTED.json (written by tests/python.rs):
  {"scalars": {tag: [[step, value], ...]},
   "audio": [{"tag": str, "format": "legacy" | "tensor", "count": int, "sample_rate": int,
              "channels": int, "length_frames": int, "freq": float}, ...],
   "text": [{"tag": str, "step": int, "text": str}, ...]  (optional)}

Checks two readers:
  1. event_accumulator.EventAccumulator: the legacy API; lists scalars and audio by kind.
  2. plugin_event_accumulator.EventAccumulator: what the TensorBoard server's Python data
     provider uses; it converts legacy values to the tensor format the Scalars/Audio panels read.
Exits non-zero (AssertionError) on any mismatch; prints one OK line per check.
"""
import io
import json
import sys
import wave

import numpy as np
from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.backend.event_processing import plugin_event_accumulator as pea
from tensorboard.compat.proto import summary_pb2
from tensorboard.plugins.audio import plugin_data_pb2 as audio_plugin_data
from tensorboard.util import tensor_util


def wav_info(data):
    with wave.open(io.BytesIO(data), "rb") as w:
        frames = w.readframes(w.getnframes())
        pcm = np.frombuffer(frames, dtype="<i2").reshape(-1, w.getnchannels())
        return w.getframerate(), w.getnchannels(), w.getnframes(), pcm


def peak_hz(signal, rate):
    spec = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    return np.argmax(spec) * rate / len(signal)


def check_wav(data, exp, who):
    rate, channels, frames, pcm = wav_info(data)
    assert rate == exp["sample_rate"], (who, rate)
    assert channels == exp["channels"], (who, channels)
    assert frames == exp["length_frames"], (who, frames)
    hz = peak_hz(pcm[:, 0].astype(np.float64), rate)
    bin_hz = rate / frames
    assert abs(hz - exp["freq"]) <= bin_hz, (who, hz, exp["freq"])
    return hz


def main():
    logdir, expected_path = sys.argv[1], sys.argv[2]
    with open(expected_path) as f:
        exp = json.load(f)

    # --- 1. legacy EventAccumulator (0 = keep everything) ---
    acc = ea.EventAccumulator(
        logdir, size_guidance={ea.SCALARS: 0, ea.AUDIO: 0, ea.TENSORS: 0}
    )
    acc.Reload()
    tags = acc.Tags()
    assert sorted(tags[ea.SCALARS]) == sorted(exp["scalars"]), tags
    for tag, pts in exp["scalars"].items():
        got = [(e.step, e.value) for e in acc.Scalars(tag)]
        want = [(s, float(np.float32(v))) for s, v in pts]
        assert got == want, (tag, got[:3], want[:3])
    print(f"OK EventAccumulator scalars: {len(exp['scalars'])} tags, "
          f"{sum(len(p) for p in exp['scalars'].values())} points")

    legacy = [a for a in exp["audio"] if a["format"] == "legacy"]
    tensor = [a for a in exp["audio"] if a["format"] == "tensor"]
    assert sorted(tags[ea.AUDIO]) == sorted(a["tag"] for a in legacy), tags[ea.AUDIO]
    for a in legacy:
        clips = acc.Audio(a["tag"])
        assert len(clips) == a["count"], len(clips)
        for clip in clips:
            assert clip.sample_rate == a["sample_rate"], clip.sample_rate
            assert clip.content_type == "audio/wav", clip.content_type
            assert clip.length_frames == a["length_frames"], clip.length_frames
            hz = check_wav(clip.encoded_audio_string, a, "EventAccumulator")
        print(f"OK EventAccumulator audio {a['tag']}: {len(clips)} clips, {a['sample_rate']} Hz, "
              f"audio/wav, {a['length_frames']} frames, peak {hz:.1f} Hz")
    for a in tensor:
        # The legacy accumulator does not know the TF2 audio layout: it is a plain tensor there.
        assert a["tag"] in tags[ea.TENSORS], tags[ea.TENSORS]
        assert len(acc.Tensors(a["tag"])) == a["count"]

    # --- 2. the server's accumulator (legacy values migrated to tensors) ---
    pacc = pea.EventAccumulator(logdir, size_guidance={"scalars": 0, "audio": 0, "tensors": 0})
    pacc.Reload()
    scalar_tags = pacc.PluginTagToContent("scalars")
    assert sorted(scalar_tags) == sorted(exp["scalars"]), scalar_tags
    for tag, pts in exp["scalars"].items():
        got = [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in pacc.Tensors(tag)]
        want = [(s, float(np.float32(v))) for s, v in pts]
        assert got == want, (tag, got[:3], want[:3])
    print(f"OK plugin_event_accumulator scalars: {len(scalar_tags)} tags")
    audio_tags = pacc.PluginTagToContent("audio")
    assert sorted(audio_tags) == sorted(a["tag"] for a in exp["audio"]), audio_tags
    for a in exp["audio"]:
        # Legacy clips become a [1, 2] (wav, label) tensor (data_compat), then dataclass_compat
        # drops the label column: a blob sequence of one WAV per step, which the Audio panel
        # serves. TF2-layout clips take the second step only.
        meta = pacc.SummaryMetadata(a["tag"])
        assert meta.data_class == summary_pb2.DATA_CLASS_BLOB_SEQUENCE, meta
        content = audio_plugin_data.AudioPluginData.FromString(meta.plugin_data.content)
        assert content.encoding == audio_plugin_data.AudioPluginData.WAV, content
        events = pacc.Tensors(a["tag"])
        assert len(events) == a["count"], len(events)
        for e in events:
            arr = tensor_util.make_ndarray(e.tensor_proto)
            assert arr.shape == (1,), arr.shape
            check_wav(arr[0], a, "plugin_event_accumulator")
        print(f"OK plugin_event_accumulator audio {a['tag']} ({a['format']}): "
              f"{len(events)} blob sequences of 1 WAV, encoding WAV")
    # --- 3. text (the alarms): the Text panel's plugin, one string per step ---
    texts = exp.get("text", [])
    if texts:
        text_tags = pacc.PluginTagToContent("text")
        assert sorted(text_tags) == sorted({t["tag"] for t in texts}), text_tags
        for tag in text_tags:
            want = [(t["step"], t["text"]) for t in texts if t["tag"] == tag]
            got = []
            for e in pacc.Tensors(tag):
                arr = tensor_util.make_ndarray(e.tensor_proto)
                assert arr.shape == (), arr.shape
                got.append((e.step, arr.item().decode("utf-8")))
            assert got == want, (tag, got, want)
        print(f"OK plugin_event_accumulator text: {len(texts)} entries")

if __name__ == "__main__":
    main()
