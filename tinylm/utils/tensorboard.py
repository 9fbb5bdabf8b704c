"""PyTorch's `torch.utils.tensorboard.SummaryWriter`: training curves that TensorBoard reads.

Owns turning numbers into TensorBoard event files. As PyTorch does, it writes them through the
`tensorboard` package (its protocol buffers and its EventFileWriter), which is an extra:
`pip install "tinylm[tensorboard]"`; without it, importing this module raises an ImportError
that says so. Then `tensorboard --logdir runs` shows them.

    from tinylm.utils.tensorboard import SummaryWriter
    with SummaryWriter() as writer:                  # runs/Dec06_20-50-00_HOST
        writer.add_scalar("loss/train", loss.item(), step)

SummaryWriter(log_dir=None, comment="", purge_step=None, max_queue=10, flush_secs=120,
filename_suffix="") with add_scalar, add_scalars (one sub-run per key, as PyTorch), add_text,
add_histogram, flush, close and use as a context manager.
Leaves out: images, audio, figures, graphs, embeddings, hparams, PR curves, meshes.
Reference: the torch.utils.tensorboard documentation (arguments, folder layout, tags).
"""
import os
import socket
import time
from datetime import datetime

import numpy as np

try:
    from tensorboard.compat.proto.event_pb2 import Event, SessionLog
    from tensorboard.compat.proto.summary_pb2 import HistogramProto, Summary, SummaryMetadata
    from tensorboard.compat.proto.tensor_pb2 import TensorProto
    from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
    from tensorboard.plugins.text.plugin_data_pb2 import TextPluginData
    from tensorboard.summary.writer.event_file_writer import EventFileWriter
except ImportError as e:                                        # pragma: no cover (depends on the environment)
    raise ImportError("tinylm.utils.tensorboard writes TensorBoard files through the tensorboard package, which "
                      "is not installed: pip install 'tinylm[tensorboard]' (or pip install tensorboard)") from e

from .. import backend
from ..tensor import Tensor


def _numpy(values, where):
    """A float64 NumPy array from a Tensor, a NumPy/CuPy array, a number or a list."""
    if isinstance(values, Tensor):
        values = values.data
    if hasattr(values, "shape") and hasattr(values, "dtype"):
        values = backend.to_numpy(values)
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{where}: expected numbers (a Tensor, an array, a number), got {type(values).__name__}") \
            from None


def _scalar(value, where):
    arr = _numpy(value, where)
    if arr.size != 1:
        raise ValueError(f"{where}: expected one number, got shape {arr.shape}")
    return float(arr.reshape(()))


def _tensorflow_bins():
    """TensorFlow's default histogram edges: +-1e-12 growing by 10% up to 1e20, and 0."""
    pos = 1e-12 * 1.1 ** np.arange(int(np.ceil(np.log(1e32) / np.log(1.1))))
    pos = pos[pos < 1e20]
    return np.concatenate([-pos[::-1], [0.0], pos])


def _histogram(values, bins, max_bins):
    """A HistogramProto: min, max, count, sum, sum of squares, and buckets from the first to the last non-empty.

    Bucket i counts the values in (bucket_limit[i-1], bucket_limit[i]]; a leading empty bucket
    ends at the left edge, so TensorBoard knows where the first one starts.
    """
    values = values.reshape(-1)
    if values.size == 0:
        raise ValueError("add_histogram: the values are empty")
    if not np.isfinite(values).all():
        raise ValueError("add_histogram: the values contain NaN or infinity")
    counts, edges = np.histogram(values, bins=_tensorflow_bins() if isinstance(bins, str) and bins == "tensorflow"
                                 else bins)
    if max_bins is not None and len(counts) > max_bins:        # merge neighbours until at most max_bins remain
        k = -(-len(counts) // int(max_bins))
        pad = -len(counts) % k
        counts = np.concatenate([counts, np.zeros(pad, counts.dtype)]).reshape(-1, k).sum(axis=1)
        edges = np.concatenate([edges[::k][:len(counts)], edges[-1:]])
    full = np.flatnonzero(counts)
    lo, hi = int(full[0]), int(full[-1]) + 1
    return HistogramProto(min=float(values.min()), max=float(values.max()), num=float(values.size),
                          sum=float(values.sum()), sum_squares=float(values @ values),
                          bucket_limit=[float(edges[lo])] + edges[lo + 1:hi + 1].tolist(),
                          bucket=[0.0] + counts[lo:hi].astype(float).tolist())


class SummaryWriter:
    """Writes scalars, texts and histograms into an event file under `log_dir` (PyTorch's SummaryWriter).

    `log_dir` defaults to runs/<month><day>_<hour>-<minute>-<second>_<host><comment>, as PyTorch's.
    Events are queued and written every `flush_secs` seconds, when `max_queue` are waiting, and
    on `flush()` or `close()` (and on leaving a `with` block).
    """

    def __init__(self, log_dir=None, comment="", purge_step=None, max_queue=10, flush_secs=120, filename_suffix=""):
        if log_dir is None:
            stamp = datetime.now().strftime("%b%d_%H-%M-%S")
            log_dir = os.path.join("runs", f"{stamp}_{socket.gethostname()}{comment}")
        if not isinstance(log_dir, (str, os.PathLike)):
            raise TypeError(f"SummaryWriter: log_dir must be a path, got {type(log_dir).__name__}")
        self.log_dir = os.fspath(log_dir)
        self.purge_step, self.max_queue, self.flush_secs = purge_step, max_queue, flush_secs
        self.filename_suffix = filename_suffix
        self._writers = {}                                      # folder -> EventFileWriter (add_scalars' sub-runs)
        self._writer(self.log_dir)

    def _writer(self, folder):
        w = self._writers.get(folder)
        if w is None:
            w = self._writers[folder] = EventFileWriter(folder, self.max_queue, self.flush_secs, self.filename_suffix)
            if self.purge_step is not None:                     # TensorBoard drops older events from this step on
                w.add_event(Event(step=self.purge_step, file_version="brain.Event:2"))
                w.add_event(Event(step=self.purge_step, session_log=SessionLog(status=SessionLog.START)))
        return w

    def get_logdir(self):
        """The folder the events go to."""
        return self.log_dir

    def _add(self, value, global_step, walltime, folder=None):
        event = Event(summary=Summary(value=[value]), wall_time=time.time() if walltime is None else float(walltime))
        if global_step is not None:
            event.step = int(global_step)
        self._writer(folder or self.log_dir).add_event(event)

    def _tag(self, tag, where):
        if not isinstance(tag, str) or not tag:
            raise TypeError(f"{where}: tag must be a non-empty str, got {tag!r}")
        return tag

    def add_scalar(self, tag, scalar_value, global_step=None, walltime=None, new_style=False,
                   double_precision=False):
        """Record one number (a float, an int, a 1-element Tensor or array) under `tag` at `global_step`."""
        tag, value = self._tag(tag, "add_scalar"), _scalar(scalar_value, "add_scalar")
        if new_style:                                           # a tensor summary tagged for the scalars plugin
            meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="scalars"))
            tensor = (TensorProto(dtype="DT_DOUBLE", double_val=[value]) if double_precision
                      else TensorProto(dtype="DT_FLOAT", float_val=[value]))
            self._add(Summary.Value(tag=tag, tensor=tensor, metadata=meta), global_step, walltime)
        else:
            self._add(Summary.Value(tag=tag, simple_value=value), global_step, walltime)

    def add_scalars(self, main_tag, tag_scalar_dict, global_step=None, walltime=None):
        """Several curves on one chart: each key goes to its own run, log_dir/<main_tag>_<key>, under main_tag."""
        main_tag = self._tag(main_tag, "add_scalars")
        if not isinstance(tag_scalar_dict, dict):
            raise TypeError(f"add_scalars: expected a dict of name -> number, got {type(tag_scalar_dict).__name__}")
        walltime = time.time() if walltime is None else walltime
        for key, value in tag_scalar_dict.items():
            folder = os.path.join(self.log_dir, main_tag.replace("/", "_") + "_" + str(key))
            self._add(Summary.Value(tag=main_tag, simple_value=_scalar(value, "add_scalars")), global_step,
                      walltime, folder)

    def add_text(self, tag, text_string, global_step=None, walltime=None):
        """Record a string (Markdown in TensorBoard's text tab) under `<tag>/text_summary`, as PyTorch."""
        tag = self._tag(tag, "add_text")
        if not isinstance(text_string, str):
            raise TypeError(f"add_text: expected a str, got {type(text_string).__name__}")
        meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(
            plugin_name="text", content=TextPluginData(version=0).SerializeToString()))
        tensor = TensorProto(dtype="DT_STRING", string_val=[text_string.encode("utf-8")],
                             tensor_shape=TensorShapeProto(dim=[TensorShapeProto.Dim(size=1)]))
        self._add(Summary.Value(tag=tag + "/text_summary", metadata=meta, tensor=tensor), global_step, walltime)

    def add_histogram(self, tag, values, global_step=None, bins="tensorflow", walltime=None, max_bins=None):
        """Record the distribution of `values` (a Tensor or array); `bins` as np.histogram's, or "tensorflow"."""
        tag = self._tag(tag, "add_histogram")
        hist = _histogram(_numpy(values, "add_histogram"), bins, max_bins)
        self._add(Summary.Value(tag=tag, histo=hist), global_step, walltime)

    def flush(self):
        """Write every queued event to disk."""
        for w in self._writers.values():
            w.flush()

    def close(self):
        """Flush and close the files (a later add_* opens new ones, as PyTorch's writer does)."""
        for w in self._writers.values():
            w.flush()
            w.close()
        self._writers = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


__all__ = ["SummaryWriter"]
