#!/usr/bin/env python3
"""Writes an event file with TensorBoard's own writers (no TensorFlow needed).

usage: write_theirs.py LOGDIR EXPECTED.json

Writes into LOGDIR:
  - "legacy/simple": legacy simple_value scalars (EventFileWriter + compat.proto);
  - "tf2/float":     TF2 tensor scalars via tensorboard.summary.Writer (float32, plugin "scalars");
  - "tf2/double":    TF2 tensor scalars, DT_DOUBLE in tensor_content, metadata on the first only;
  - "tf2/float_content": DT_FLOAT in tensor_content;
  - "sound":         a legacy Summary.Audio clip (which no reader should take for a scalar);
  - "hist":          a non-scalar tensor with plugin "histograms" (ignored by scalar readers).
and the expected scalars to EXPECTED.json as {tag: [[step, "repr(value)"], ...]}: values as
strings, so that the reader parses them exactly (JSON float parsers may round).
"""
import io
import json
import struct
import sys
import wave

import numpy as np
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
from tensorboard.summary import DirectoryOutput, Writer
from tensorboard.summary.writer.event_file_writer import EventFileWriter


def main():
    logdir, expected_path = sys.argv[1], sys.argv[2]
    expected = {"legacy/simple": [], "tf2/float": [], "tf2/double": [], "tf2/float_content": []}

    w = EventFileWriter(logdir)
    for step in range(0, 30, 3):
        v = 1.0 / (step + 1)
        ev = event_pb2.Event(wall_time=1000.0 + step, step=step)
        ev.summary.value.add(tag="legacy/simple", simple_value=v)
        w.add_event(ev)
        expected["legacy/simple"].append([step, float(np.float32(v))])

        d = 0.1 * step + 1e-12  # needs double precision
        meta = None
        if step == 0:
            meta = summary_pb2.SummaryMetadata(
                plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
        t = tensor_pb2.TensorProto(
            dtype=types_pb2.DT_DOUBLE,
            tensor_shape=tensor_shape_pb2.TensorShapeProto(),
            tensor_content=struct.pack("<d", d))
        ev = event_pb2.Event(wall_time=1000.0 + step, step=step)
        val = ev.summary.value.add(tag="tf2/double", tensor=t)
        if meta is not None:
            val.metadata.CopyFrom(meta)
        w.add_event(ev)
        expected["tf2/double"].append([step, d])

        f = -2.5 * step
        t = tensor_pb2.TensorProto(
            dtype=types_pb2.DT_FLOAT,
            tensor_shape=tensor_shape_pb2.TensorShapeProto(),
            tensor_content=struct.pack("<f", f))
        ev = event_pb2.Event(wall_time=1000.0 + step, step=step)
        ev.summary.value.add(tag="tf2/float_content", tensor=t, metadata=summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")))
        w.add_event(ev)
        expected["tf2/float_content"].append([step, float(np.float32(f))])

    # A histogram-plugin tensor and a legacy audio clip: neither is a scalar.
    ev = event_pb2.Event(wall_time=2000.0, step=5)
    hist = tensor_pb2.TensorProto(
        dtype=types_pb2.DT_DOUBLE,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=1)]),
        double_val=[7.0])
    ev.summary.value.add(tag="hist", tensor=hist, metadata=summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="histograms")))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as wf:
        wf.setnchannels(1)
        wf.setsampwidth(2)
        wf.setframerate(8000)
        wf.writeframes(np.zeros(800, dtype="<i2").tobytes())
    ev.summary.value.add(tag="sound", audio=summary_pb2.Summary.Audio(
        sample_rate=8000, num_channels=1, length_frames=800,
        encoded_audio_string=buf.getvalue(), content_type="audio/wav"))
    w.add_event(ev)
    w.close()

    # tensorboard.summary.Writer: the TF-free TF2 writer (float32 tensor, plugin "scalars").
    tw = Writer(DirectoryOutput(logdir))
    for step in range(5):
        v = 0.5 + step
        tw.add_scalar("tf2/float", np.float32(v), step, wall_time=3000.0 + step)
        expected["tf2/float"].append([step, float(np.float32(v))])
    tw.close()

    with open(expected_path, "w") as f:
        json.dump({t: [[s, repr(v)] for s, v in pts] for t, pts in expected.items()}, f)
    print(f"OK wrote {sum(len(v) for v in expected.values())} scalars in {len(expected)} tags")


if __name__ == "__main__":
    main()
