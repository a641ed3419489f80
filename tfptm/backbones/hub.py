"""TF Hub backbones as a Keras 3 layer: tfhub.dev and Kaggle handles, local SavedModels and archives.

Upstream offers two ways in and neither works with Keras 3: `hub.KerasLayer`
is a tf_keras layer that Keras 3 models reject, and `keras.layers.TFSMLayer`
wraps the module's variables under their TensorFlow names (`"w:0"`), from
which an optimizer derives slot names such as `"w:0_momentum"` that
TensorFlow refuses at the first training step. `HubLayer` wraps each module
variable in a `keras.Variable` that shares the same TensorFlow variable but
carries a clean name, so any Keras optimizer trains the module in place.

Handles are resolved by `resolve`:

- `https://tfhub.dev/...` and `https://www.kaggle.com/models/...`, through
  tensorflow_hub's download cache (`TFHUB_CACHE_DIR`; `pip install
  'tfptm[tfhub]'`); offline (`TFPTM_OFFLINE=1`, or the hub unreachable),
  only what is already cached loads;
- a local directory holding a TF2 SavedModel, or a `file://` URL of one;
- a local `.tar.gz` / `.tgz` / `.tar` of a SavedModel, checked member by
  member and extracted once into the same cache (optionally pinned with
  `sha256=`). A file that is not such an archive (not a tar archive, cut
  short, or with no `saved_model.pb` inside) is refused in one line naming it.
"""

import hashlib
import inspect
import os
import posixpath
import re
import socket
import tarfile
import threading
import zlib
import urllib.parse
import urllib.request
from pathlib import Path, PurePosixPath

import keras
import tensorflow as tf

from tfptm import downloads
from tfptm.backbones.registry import BACKBONE_NAME, register_handle_source
from tfptm.errors import TfptmError
from tfptm.files import staged_directory

HUB_HOSTS = ("tfhub.dev", "www.kaggle.com", "kaggle.com")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
# How long to wait for a TCP connection to the hub before calling it offline.
PROBE_SECONDS = 3.0
_LOCAL_HINT = "pass a local directory holding a TF2 SavedModel (or a .tar.gz of one) instead"
_ARCHIVE_EXPECTED = "expected a .tar.gz of a SavedModel"
# The first bytes of each compression tarfile reads, to say what a file that is not a tar archive is.
_MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz"}


def matches(handle):
    """True for the handles this source loads: hub URLs, `file://` URLs, SavedModel directories, archives.

    `.keras` files and directories with `config.json` or `metadata.json`
    (Keras presets and saved models) are left to other sources.

    Example:
    >>> matches("https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/feature_vector/5")
    True
    >>> matches("model.keras"), matches("weights.tar.gz")
    (False, True)
    """
    parsed = urllib.parse.urlparse(handle)
    if parsed.scheme in ("http", "https"):  # http is claimed only to refuse it clearly
        host = parsed.hostname
        return host == "tfhub.dev" or (host in HUB_HOSTS and parsed.path.startswith("/models/"))
    path = Path(urllib.request.url2pathname(parsed.path)) if parsed.scheme == "file" else Path(handle)
    if path.name.endswith(".keras") or any((path / f).exists() for f in ("config.json", "metadata.json")):
        return False
    # file:// URLs are claimed even when they point nowhere, to say so clearly.
    return parsed.scheme == "file" or path.name.endswith(ARCHIVE_SUFFIXES) or _is_saved_model(path)


def resolve(handle, sha256=None):
    """Returns the local directory of the TF2 SavedModel that `handle` points to.

    Args:
        handle: an `https://` URL (tfhub.dev, Kaggle), a `file://` URL, or a
            local path to a SavedModel directory or a `.tar.gz`/`.tgz` of one.
        sha256: hex digest the local archive must have; a mismatch is refused.

    Raises one `TfptmError` for anything that cannot be resolved: another
    URL scheme, a missing path, a directory that is not a SavedModel, an
    unsafe archive, or a download while offline.

    Example:
    >>> import tempfile, tensorflow as tf
    >>> path = tempfile.mkdtemp()
    >>> tf.saved_model.save(tf.Module(), path)
    >>> resolve(path) == resolve("file://" + path) == Path(path)
    True
    """
    if not isinstance(handle, (str, os.PathLike)) or not str(handle):
        raise TfptmError(f"A hub handle must be a non-empty string or path; got {handle!r}")
    handle = str(handle)
    parsed = urllib.parse.urlparse(handle)
    if parsed.scheme == "https":
        if sha256 is not None:
            raise TfptmError(f"sha256= pins a local archive, but {handle!r} is a URL; download it and pass the .tar.gz")
        return _saved_model_dir(_download(handle), handle)
    if parsed.scheme == "file":
        path = Path(urllib.request.url2pathname(parsed.path))
    elif parsed.scheme:
        raise TfptmError(f"Unsupported hub handle {handle!r}; expected an https:// URL, a file:// URL or a local path")
    else:
        path = Path(handle).expanduser()
    if path.is_file() and path.name.endswith(ARCHIVE_SUFFIXES):
        return _saved_model_dir(_extract(path, sha256), handle)
    if sha256 is not None and path.exists():
        raise TfptmError(f"sha256= pins a .tar.gz archive, but {handle!r} is not one")
    return _saved_model_dir(path, handle)


def _saved_model_dir(path, handle):
    """`path`, or its one subdirectory (archives often wrap one), if it holds a SavedModel; else one clear error."""
    path = Path(path)
    expected = "expected a directory holding a TF2 SavedModel (saved_model.pb), a .tar.gz of one, or a hub URL"
    if not path.exists():
        raise TfptmError(f"Hub handle {handle!r}: {str(path)!r} does not exist; {expected}")
    if _is_saved_model(path):
        return path
    subdirs = [p for p in path.iterdir() if p.is_dir()] if path.is_dir() else []
    if len(subdirs) == 1 and _is_saved_model(subdirs[0]):
        return subdirs[0]
    raise TfptmError(f"Hub handle {handle!r}: {str(path)!r} is not a SavedModel (no saved_model.pb); {expected}")


def _is_saved_model(directory):
    return any((Path(directory) / f).is_file() for f in SAVED_MODEL_FILES)


def _cache_dir():
    try:
        from tensorflow_hub import resolver  # imports tf_keras, so only when a cache is needed
    except ModuleNotFoundError:
        raise TfptmError("TF Hub URLs and archives need tensorflow_hub; install it with pip install 'tfptm[tfhub]' "
                         f"(or pip install tensorflow-hub), or {_LOCAL_HINT.replace(' (or a .tar.gz of one)', '')}") from None

    return Path(resolver.tfhub_cache_dir(use_temp=True))


def _download(url):
    """The cached directory of a hub URL, downloading it through tensorflow_hub when online."""
    cache = _cache_dir()
    from tensorflow_hub import compressed_module_resolver

    # tensorflow_hub caches a URL under the SHA-1 of its text and returns a
    # cached entry without touching the network.
    cached = cache / hashlib.sha1(url.encode("utf8")).hexdigest()
    if cached.is_dir() and any(cached.iterdir()):
        return cached
    host = urllib.parse.urlparse(url).hostname
    if downloads.offline():
        raise downloads.not_cached(repr(url), repr(str(cache)) + " (TFHUB_CACHE_DIR)", _LOCAL_HINT)
    if not _reachable(host):
        raise TfptmError(
            f"Cannot download {url!r} offline ({host} is unreachable) and it is not in the TF Hub cache "
            f"{str(cache)!r} (set TFHUB_CACHE_DIR to use another); {_LOCAL_HINT}"
        )
    try:
        return Path(compressed_module_resolver.HttpCompressedFileResolver()(url))
    except (OSError, ValueError, tf.errors.OpError) as error:
        raise TfptmError(f"Cannot download {url!r}: {error}; {_LOCAL_HINT}") from None


def _reachable(host, port=443):
    """Whether a TCP connection to `host` (or the HTTPS proxy) opens within `PROBE_SECONDS`.

    The probe runs in a daemon thread, so a stalled DNS lookup cannot hang the caller.
    """
    proxy = urllib.request.getproxies().get("https")
    if proxy:
        parsed = urllib.parse.urlparse(proxy if "://" in proxy else f"http://{proxy}")
        host, port = parsed.hostname, parsed.port or 80
    opened = []

    def probe():
        try:
            socket.create_connection((host, port), timeout=PROBE_SECONDS).close()
            opened.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(PROBE_SECONDS)
    return bool(opened)


def _extract(archive, sha256):
    """Extracts a checked archive once into the TF Hub cache and returns the directory."""
    digest = _file_sha256(archive)
    if sha256 is not None and digest != str(sha256).lower():
        raise TfptmError(f"Archive {str(archive)!r} has sha256 {digest}; expected {sha256}")
    stem = re.sub(r"\.(tar\.gz|tgz|tar)$", "", archive.name)
    target = _cache_dir() / f"{stem}-{digest[:16]}"
    if target.is_dir():  # extraction renames into place, so a present target is complete
        return target
    try:
        tar = tarfile.open(archive, "r:*")
    except tarfile.ReadError:  # its message lists every decompressor tried, one per line
        raise TfptmError(f"Cannot extract {str(archive)!r}: {_not_tar(archive)}; {_ARCHIVE_EXPECTED}") from None
    except (EOFError, zlib.error) as error:  # cut short within its first member
        raise _truncated(archive, error) from None
    except OSError as error:
        raise TfptmError(f"Cannot read {str(archive)!r}: {error.strerror or error}; {_ARCHIVE_EXPECTED}") from None
    try:
        with tar:
            try:
                members = tar.getmembers()
            except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
                raise _truncated(archive, error) from None
            _check_members(members, archive)
            _check_holds_saved_model(members, archive)
            with staged_directory(target, what="TF Hub cache entry") as staging:
                tar.extractall(staging, members=members, filter="data")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        if target.is_dir():  # another process extracted the same archive first
            return target
        raise TfptmError(f"Cannot extract {str(archive)!r}: {_reason(error)}") from None
    return target


def _not_tar(archive):
    """Says in a few words what `archive`, which tarfile cannot open, is instead."""
    with open(archive, "rb") as f:
        head = f.read(8)
    if not head:
        return "an empty file, not a tar archive"
    for magic, kind in _MAGIC.items():
        if head.startswith(magic):
            return f"{kind}-compressed, but not a tar archive inside (or cut short)"
    return "not a tar archive"


def _truncated(archive, error):
    return TfptmError(
        f"Cannot extract {str(archive)!r}: the archive is truncated or corrupt ({_reason(error)}); "
        "expected a complete .tar.gz of a SavedModel"
    )


def _reason(error):
    """An exception as a few words: its message, else its type (EOFError says nothing by itself)."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _check_holds_saved_model(members, archive):
    """Refuses, before extracting anything, an archive without `saved_model.pb` at its top or in one top directory."""
    names = {PurePosixPath(posixpath.normpath(m.name)) for m in members if m.isfile()}
    if not any(name.name in SAVED_MODEL_FILES and len(name.parts) <= 2 for name in names):
        what = f"{len(members)} members" if members else "no members"
        raise TfptmError(
            f"Archive {str(archive)!r} holds no SavedModel ({what}, no saved_model.pb at its top or in one "
            f"top directory); {_ARCHIVE_EXPECTED}"
        )


def _check_members(members, archive):
    """Refuses absolute names, `..`, links that leave the archive, paths through links, and devices."""
    links = {posixpath.normpath(m.name) for m in members if m.issym() or m.islnk()}
    for member in members:
        name = PurePosixPath(member.name)
        problem = None
        if name.is_absolute() or re.match(r"^[A-Za-z]:", member.name):
            problem = "an absolute path"
        elif ".." in name.parts:
            problem = "'..' in its path"
        elif any(str(parent) in links for parent in name.parents):
            problem = "a path through a link"
        elif member.issym() or member.islnk():
            base = str(name.parent) if member.issym() else ""  # hard links are relative to the archive root
            target = posixpath.normpath(posixpath.join(base, member.linkname))
            if posixpath.isabs(member.linkname) or target == ".." or target.startswith("../"):
                problem = f"a link to {member.linkname!r} outside the archive"
        elif not (member.isfile() or member.isdir()):
            problem = "a device or FIFO type"
        if problem:
            raise TfptmError(
                f"Refusing to extract {str(archive)!r}: member {member.name!r} has {problem}; "
                "expected a .tar.gz of a SavedModel with relative paths inside it"
            )


def _file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@keras.saving.register_keras_serializable(package="tfptm")
class HubLayer(keras.layers.Layer):
    """A TF2 SavedModel (TF Hub module) as a trainable Keras 3 layer.

    Args:
        handle: what `resolve` accepts: a hub URL, a `file://` URL, a
            SavedModel directory or a `.tar.gz` of one.
        signature: the function to call: `None` for the module's `__call__`
            (or `"serving_default"` when it has none), a name in the module's
            `signatures` (called with keyword inputs), or the name of another
            function attribute such as Keras' `"serve"`.
        output_key: which output to return when the function returns a
            dict; may be left out when the dict has one entry.
        trainable: whether optimizers update the module's variables. A
            `__call__` with a `training` argument runs in training mode only
            when the layer is trainable and called with `training=True`.
        sha256: hex digest a local archive must have.

    The module's variables become the layer's weights: each is a
    `keras.Variable` sharing the module's `tf.Variable`, named without the
    `":0"` suffix, so optimizers, `model.save` and `model.export` all see and
    update the variables the module computes with. Inputs are cast to the
    dtypes the module takes.

    Attributes:
        module: the loaded SavedModel object.
        module_input_spec: the chosen function's input, a `tf.TensorSpec` or
            a dict of them.
        saved_model_dir: the local directory the handle resolved to.

    Example:
    >>> import tempfile, numpy as np, tensorflow as tf
    >>> class Dense(tf.Module):
    ...     def __init__(self):
    ...         self.w = tf.Variable(tf.ones([3, 2]))
    ...     @tf.function(input_signature=[tf.TensorSpec([None, 3])])
    ...     def __call__(self, x):
    ...         return tf.matmul(x, self.w)
    >>> path = tempfile.mkdtemp()
    >>> tf.saved_model.save(Dense(), path)
    >>> model = keras.Sequential([keras.Input((3,)), HubLayer(path), keras.layers.Dense(1)])
    >>> model.compile("adam", "mse")
    >>> [w.path for w in model.layers[0].trainable_weights]
    ['hub_layer/Variable']
    """

    def __init__(self, handle, signature=None, output_key=None, trainable=True, sha256=None, **kwargs):
        super().__init__(trainable=trainable, **kwargs)
        self.handle, self.signature, self.output_key, self.sha256 = str(handle), signature, output_key, sha256
        self.saved_model_dir = resolve(handle, sha256)
        try:
            # An attribute, so exports track the module and keep its assets and tables.
            self._module = tf.saved_model.load(str(self.saved_model_dir))
        except (OSError, ValueError, tf.errors.OpError) as error:
            raise TfptmError(f"Cannot load the SavedModel at {str(self.saved_model_dir)!r}: {error}") from None
        self._fn, self._keyword_inputs = self._endpoint()
        concrete = getattr(self._fn, "concrete_functions", None) or [self._fn]
        self._takes_training = not self._keyword_inputs and "training" in _parameters(self._fn)
        self._output_name = self._choose_output(concrete[0].structured_outputs)
        args, kwargs = concrete[0].structured_input_signature
        if not (kwargs if self._keyword_inputs else args):
            raise TfptmError(f"SavedModel {self.handle!r}: its function {self.signature!r} takes no inputs; pick another")
        self.module_input_spec = dict(kwargs) if self._keyword_inputs else args[0]
        self._hub_variables = self._wrap_variables(concrete)  # a list attribute: Keras tracks them as weights
        if not self.trainable:  # as Keras does for the weights of a frozen layer
            for weight in self._hub_variables:
                weight.trainable = False
        self.built = True

    @property
    def module(self):
        """The loaded SavedModel object, for its other functions and its variables under their own names."""
        return self._module

    def _endpoint(self):
        """The function to call, and whether it takes keyword inputs (a signature)."""
        module, name = self._module, self.signature
        if name is None and callable(module) and getattr(module.__call__, "concrete_functions", None):
            return module.__call__, False
        name = name or "serving_default"
        if name in module.signatures:
            return module.signatures[name], True
        if getattr(getattr(module, name, None), "concrete_functions", None):
            return getattr(module, name), False
        choices = sorted([*module.signatures, *(["__call__"] if callable(module) else [])])
        raise TfptmError(
            f"SavedModel {self.handle!r} has no signature or function {name!r}; expected one of: {', '.join(choices)}"
        )

    def _choose_output(self, outputs):
        if not isinstance(outputs, dict):
            if self.output_key is not None:
                raise TfptmError(f"SavedModel {self.handle!r} returns one tensor, not a dict; leave output_key unset")
            return None
        if self.output_key is None and len(outputs) == 1:
            return next(iter(outputs))
        if self.output_key not in outputs:
            keys = ", ".join(sorted(outputs))
            raise TfptmError(f"SavedModel {self.handle!r}: output_key is {self.output_key!r}; expected one of: {keys}")
        return self.output_key

    def _wrap_variables(self, concrete_functions):
        """One `keras.Variable` per module variable the function uses, sharing it, with a clean unique name."""
        # Reusable SavedModels (TF Hub's format) list what may train; other SavedModels mark each variable.
        listed = getattr(self._module, "trainable_variables", None)
        listed = None if listed is None else {id(v) for v in listed}
        seen, names, wrapped = set(), set(), []
        with keras.name_scope(self.name):
            for variable in (v for fn in concrete_functions for v in fn.variables):
                if id(variable) in seen:
                    continue
                seen.add(id(variable))
                base = re.sub(r"[^A-Za-z0-9_.-]", "_", re.sub(r":\d+$", "", variable.name)) or "variable"
                name, n = base, 0
                while name in names:
                    n += 1
                    name = f"{base}_{n}"
                names.add(name)
                trainable = variable.trainable and variable.dtype.is_floating
                trainable = trainable and (listed is None or id(variable) in listed)
                weight = keras.Variable(variable, trainable=trainable, dtype=variable.dtype.name, name=name)
                if weight.value is not variable:  # Keras adopts a tf.Variable it is given; training relies on it
                    raise RuntimeError(f"keras.Variable copied {variable.name} instead of sharing it; needs Keras 3.15")
                wrapped.append(weight)
        return wrapped

    def call(self, inputs, training=None):
        inputs = _cast_to(inputs, self.module_input_spec)
        if self._keyword_inputs:
            outputs = self._fn(**inputs)
        elif self._takes_training:
            outputs = self._fn(inputs, training=bool(training) and self.trainable)
        else:
            outputs = self._fn(inputs)
        return outputs if self._output_name is None else outputs[self._output_name]

    def get_config(self):
        config = super().get_config()
        config.update(handle=self.handle, signature=self.signature, output_key=self.output_key, sha256=self.sha256)
        return config

    @classmethod
    def from_config(cls, config):
        # A SavedModel's graph can read and write files, so like keras.layers.TFSMLayer
        # it is not loaded from a config inside `keras.saving.load_model(safe_mode=True)`.
        from keras.src.saving.serialization_lib import in_safe_mode

        if in_safe_mode():
            raise TfptmError(
                f"Refusing to load the SavedModel {config.get('handle')!r} named in a saved config in safe mode; "
                "if you trust it, pass safe_mode=False to keras.saving.load_model"
            )
        return cls(**config)


def _cast_to(inputs, specs):
    """`inputs` in the dtypes the module takes (Keras may have autocast them); one tensor fills a one-entry dict."""
    if isinstance(specs, tf.TensorSpec):
        return tf.cast(inputs, specs.dtype)
    if isinstance(specs, dict):
        if not isinstance(inputs, dict):
            inputs = {next(iter(specs)): inputs}
        return {key: tf.cast(x, specs[key].dtype) for key, x in inputs.items()}
    return inputs


def _parameters(fn):
    try:
        return inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}


def load(handle, input_shape=None, dtype=None, signature=None, output_key=None, trainable=True, sha256=None):
    """Loads a hub handle as a functional backbone: `keras.Input` -> `HubLayer` -> features.

    The input's shape and dtype come from the module's function; pass
    `input_shape` (without the batch axis) when it leaves a dimension free,
    such as the image size of many TF Hub image models. This is what
    `tfptm.backbones.get(handle, ...)` calls for hub handles.

    Example:
    >>> import tempfile, tensorflow as tf, tfptm
    >>> class Features(tf.Module):
    ...     @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3])])
    ...     def __call__(self, images):
    ...         return tf.reduce_mean(images, axis=[1, 2])
    >>> path = tempfile.mkdtemp()
    >>> tf.saved_model.save(Features(), path)
    >>> backbone = tfptm.backbones.get(path, input_shape=(8, 8, 3))
    >>> backbone.name, backbone.input.shape, backbone.output.shape
    ('backbone', (None, 8, 8, 3), (None, 3))
    """
    layer = HubLayer(handle, signature=signature, output_key=output_key, trainable=trainable, sha256=sha256, name="hub")
    specs = layer.module_input_spec
    if isinstance(specs, dict):
        if len(specs) != 1:
            raise TfptmError(
                f"SavedModel {handle!r} takes {len(specs)} inputs ({', '.join(sorted(specs))}); tfptm backbones "
                "take one, so build this model with a keras.Input for each and a HubLayer"
            )
        (name, spec), = specs.items()
    elif isinstance(specs, tf.TensorSpec):
        name, spec = specs.name or "inputs", specs
    else:
        raise TfptmError(f"SavedModel {handle!r} takes a nested input {specs}; tfptm backbones take one tensor")
    free = spec.shape.rank is None or None in spec.shape[1:]
    if input_shape is None and free:
        raise TfptmError(
            f"SavedModel {handle!r} takes {name!r} of shape {spec.shape} with free dimensions; "
            "pass input_shape=(...) giving every dimension after the batch"
        )
    shape = tuple(spec.shape[1:]) if input_shape is None else tuple(input_shape)
    if not spec.shape.is_compatible_with((None, *shape)):
        raise TfptmError(f"input_shape {shape} does not fit SavedModel {handle!r}: it takes {name!r} of shape {spec.shape}")
    inputs = keras.Input(shape=shape, dtype=dtype or spec.dtype.name, name=name)
    return keras.Model(inputs, layer(inputs), name=BACKBONE_NAME)


register_handle_source("hub", matches, load)
