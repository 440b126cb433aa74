#!/usr/bin/env python3
"""Reads TensorBoard event files with the stock `tensorboard` package and prints JSON.

Usage: readback.py LOGDIR

Every directory under LOGDIR (LOGDIR included) that holds an event file is a run, read
with TensorBoard's EventAccumulator (size_guidance 0: keep every event). The hparams
plugin data of each run is parsed with `tensorboard.plugins.hparams.metadata`, and the
session groups (the rows of the HPARAMS tab) are computed by the hparams plugin's own
backend over the whole LOGDIR. Output:

    {"runs": {RUN: {"scalars": [{"tag", "step", "value"}],
                    "images": [{"tag", "step", "width", "height",
                                "png_width", "png_height", "colorspace"}],
                    "histograms": [{"tag", "step", "count", "min", "max", "sum",
                                    "bucket_total", "buckets"}],
                    "texts": [{"tag", "step", "text"}],
                    "hparams": {"experiment": {...}, "session_start": {...},
                                "session_end": {...}}}},
     "session_groups": [{"name", "hparams", "metrics", "statuses"}]}

RUN is the directory relative to LOGDIR ("." for LOGDIR itself). Exits with status 3 and
a message saying `pip install tensorboard` when the package is missing.
"""

import json
import os
import struct
import sys

try:
    from tensorboard import context as tb_context
    from tensorboard.backend.event_processing import data_provider
    from tensorboard.backend.event_processing import event_accumulator as ea
    from tensorboard.backend.event_processing import io_wrapper
    from tensorboard.backend.event_processing import plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import api_pb2
    from tensorboard.plugins.hparams import backend_context
    from tensorboard.plugins.hparams import list_session_groups
    from tensorboard.plugins.hparams import metadata as hparams_metadata
    from tensorboard.util import tensor_util
    from tensorboard import version as tb_version
except ImportError as e:
    sys.stderr.write(
        "readback.py: the `tensorboard` Python package is not importable (%s) with %s;\n"
        "run `%s -m pip install tensorboard` (or set CAPSNET_PYTHON to a Python that has it)\n"
        % (e, sys.executable, sys.executable)
    )
    sys.exit(3)

SIZE_GUIDANCE = {
    ea.COMPRESSED_HISTOGRAMS: 0,
    ea.IMAGES: 0,
    ea.AUDIO: 0,
    ea.SCALARS: 0,
    ea.HISTOGRAMS: 0,
    ea.TENSORS: 0,
}

ALL_STATUSES = [
    api_pb2.STATUS_UNKNOWN,
    api_pb2.STATUS_SUCCESS,
    api_pb2.STATUS_FAILURE,
    api_pb2.STATUS_RUNNING,
]


def png_size(data):
    """(width, height) from the IHDR chunk of a PNG, or (None, None)."""
    if len(data) < 24 or data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return (None, None)
    return struct.unpack(">II", data[16:24])


def protobuf_value(value):
    kind = value.WhichOneof("kind")
    return None if kind in (None, "null_value") else getattr(value, kind)


def plugin_tags(acc, plugin_name):
    """{tag: plugin content} of a plugin; EventAccumulator raises KeyError for none."""
    try:
        return acc.PluginTagToContent(plugin_name)
    except KeyError:
        return {}


def read_hparams(acc):
    content = plugin_tags(acc, hparams_metadata.PLUGIN_NAME)
    out = {}
    if hparams_metadata.EXPERIMENT_TAG in content:
        exp = hparams_metadata.parse_experiment_plugin_data(
            content[hparams_metadata.EXPERIMENT_TAG]
        )
        out["experiment"] = {
            "hparams": [
                {
                    "name": h.name,
                    "type": api_pb2.DataType.Name(h.type),
                    "differs": h.differs,
                }
                for h in exp.hparam_infos
            ],
            "metrics": [
                {"group": m.name.group, "tag": m.name.tag} for m in exp.metric_infos
            ],
        }
    if hparams_metadata.SESSION_START_INFO_TAG in content:
        start = hparams_metadata.parse_session_start_info_plugin_data(
            content[hparams_metadata.SESSION_START_INFO_TAG]
        )
        out["session_start"] = {
            "hparams": {k: protobuf_value(v) for k, v in start.hparams.items()},
            "group_name": start.group_name,
            "start_time_secs": start.start_time_secs,
        }
    if hparams_metadata.SESSION_END_INFO_TAG in content:
        end = hparams_metadata.parse_session_end_info_plugin_data(
            content[hparams_metadata.SESSION_END_INFO_TAG]
        )
        out["session_end"] = {
            "status": api_pb2.Status.Name(end.status),
            "end_time_secs": end.end_time_secs,
        }
    return out


def read_run(run_dir):
    acc = ea.EventAccumulator(run_dir, size_guidance=SIZE_GUIDANCE)
    acc.Reload()
    tags = acc.Tags()
    run = {"scalars": [], "images": [], "histograms": [], "texts": []}
    for tag in tags[ea.SCALARS]:
        for e in acc.Scalars(tag):
            run["scalars"].append({"tag": tag, "step": e.step, "value": e.value})
    for tag in tags[ea.IMAGES]:
        for e in acc.Images(tag):
            png_w, png_h = png_size(e.encoded_image_string)
            run["images"].append(
                {
                    "tag": tag,
                    "step": e.step,
                    "width": e.width,
                    "height": e.height,
                    "png_width": png_w,
                    "png_height": png_h,
                }
            )
    for tag in tags[ea.HISTOGRAMS]:
        for e in acc.Histograms(tag):
            h = e.histogram_value
            run["histograms"].append(
                {
                    "tag": tag,
                    "step": e.step,
                    "count": h.num,
                    "min": h.min,
                    "max": h.max,
                    "sum": h.sum,
                    "bucket_total": sum(h.bucket),
                    "buckets": len(h.bucket),
                }
            )
    for tag in sorted(plugin_tags(acc, "text")):
        for e in acc.Tensors(tag):
            array = tensor_util.make_ndarray(e.tensor_proto)
            for item in array.reshape(-1):
                run["texts"].append(
                    {"tag": tag, "step": e.step, "text": item.decode("utf-8")}
                )
    run["hparams"] = read_hparams(acc)
    return run


def session_groups(logdir):
    """The rows of the HPARAMS tab, from the hparams plugin's backend."""
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(logdir)
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, logdir)
    context = backend_context.Context(
        base_plugin.TBContext(
            logdir=logdir, data_provider=provider, multiplexer=multiplexer
        )
    )
    request = api_pb2.ListSessionGroupsRequest(
        start_index=0,
        slice_size=1000,
        allowed_statuses=ALL_STATUSES,
        include_metrics=True,
    )
    response = list_session_groups.Handler(
        tb_context.RequestContext(), context, "", request
    ).run()
    return [
        {
            "name": g.name,
            "hparams": {k: protobuf_value(v) for k, v in g.hparams.items()},
            "metrics": {m.name.tag: m.value for m in g.metric_values},
            "statuses": [api_pb2.Status.Name(s.status) for s in g.sessions],
        }
        for g in sorted(response.session_groups, key=lambda g: g.name)
    ]


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: readback.py LOGDIR\n")
        sys.exit(2)
    logdir = os.path.abspath(sys.argv[1])
    runs = {}
    for run_dir in sorted(io_wrapper.GetLogdirSubdirectories(logdir)):
        runs[os.path.relpath(run_dir, logdir)] = read_run(run_dir)
    print(
        json.dumps(
            {
                "tensorboard_version": tb_version.VERSION,
                "runs": runs,
                "session_groups": session_groups(logdir),
            },
            indent=1,
            sort_keys=True,
        )
    )


if __name__ == "__main__":
    main()
