r"""Export a run's encoder for other codebases: timm, big_vision, or our own tree as .npz.

  python -m avrl_jax.export --workdir DIR [--step N] [--params online|ema] \
      --format timm|big_vision|npz --out PATH [--overwrite]

- `timm`: PATH is a safetensors file with timm `VisionTransformer` state_dict names and
  layouts; PATH.json beside it holds the constructor kwargs (`timm_kwargs`), the input
  normalisation and resolution (`input`), and the source (workdir, step, params). Load with
      model = timm.models.vision_transformer.VisionTransformer(**sidecar["timm_kwargs"])
      model.load_state_dict(safetensors.torch.load_file(PATH), strict=True)
  `model(x)` (x: NCHW, normalised as `input` says) gives the pooled features.
- `big_vision`: PATH is an .npz of big_vision ViT parameters ("/"-joined names, nn.scan off);
  PATH.json holds `big_vision_model` (the `vit.Model` kwargs) and the same `input`/`source`.
- `npz`: PATH is an .npz of our own encoder tree ("/"-joined), with the same metadata as a
  JSON string under the key `__meta__`; `export_formats.unflatten` rebuilds the tree.

`--params ema` exports the EMA/target network's encoder (the train state's `target_params`),
`online` (default) the trained one. The checkpoint is read whole onto one device, however it
was sharded when saved (FSDP included; see `checkpointing.restore_params`): run the export as
a single process. Files are written to temporary names and renamed, so a failed export leaves
nothing half-written; an existing PATH (or PATH.json) is kept unless `--overwrite`. Errors are
one line naming the problem and the fix (exit status 2 for the command line, 1 for
the export).

The conversions themselves are pure functions in `avrl_jax.models.export_formats`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile

import numpy as np

from avrl_jax import paths
from avrl_jax.env.render import NORM_MEAN, NORM_STD
from avrl_jax.models import export_formats as formats

META_KEY = "__meta__"
SIDECAR_SUFFIX = ".json"


class ExportCliError(Exception):
    """A problem with the export's inputs; the message names it and the fix."""


def _outputs(out: str, fmt: str) -> list[str]:
    return [out] if fmt == "npz" else [out, out + SIDECAR_SUFFIX]


def check_outputs(out: str, fmt: str, overwrite: bool) -> None:
    """Raises ExportCliError if an output exists (without `overwrite`) or cannot be written."""
    directory = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(directory):
        raise ExportCliError(
            f"the directory of --out={out} ({directory}) does not exist; create it first"
        )
    if os.path.isdir(out):
        raise ExportCliError(f"--out={out} is a directory; give a file path")
    if not overwrite:
        existing = [path for path in _outputs(out, fmt) if os.path.exists(path)]
        if existing:
            raise ExportCliError(
                f"{existing[0]} already exists; pass --overwrite to replace it, or choose "
                "another --out"
            )


def metadata(fmt: str, spec: formats.EncoderSpec, workdir: str, step: int, params: str) -> dict:
    """What every format records: the input preparation, the architecture, the source."""
    layout = "NCHW" if fmt == "timm" else "NHWC"
    meta = {
        "format": fmt,
        "input": formats.input_spec(spec.image_size, NORM_MEAN, NORM_STD, layout),
    }
    if fmt == "timm":
        meta["timm_kwargs"] = formats.timm_kwargs(spec)
        meta["layer_norm_eps"] = formats.LAYER_NORM_EPS
    elif fmt == "big_vision":
        meta["big_vision_model"] = formats.big_vision_model_config(spec)
        meta["layer_norm_eps"] = formats.LAYER_NORM_EPS
    meta["architecture"] = formats.architecture(spec)
    meta["source"] = {"workdir": paths.absolute(workdir), "step": step, "params": params}
    return meta


def convert(fmt: str, encoder_params: dict, spec: formats.EncoderSpec) -> dict[str, np.ndarray]:
    """The arrays of format `fmt` (a flat name -> array dict)."""
    if fmt == "timm":
        return formats.timm_state_dict(encoder_params, spec)
    if fmt == "big_vision":
        return formats.big_vision_params(encoder_params, spec)
    return formats.flatten(encoder_params)


def _temporary(path: str) -> str:
    fd, temporary = tempfile.mkstemp(
        dir=os.path.dirname(os.path.abspath(path)),
        prefix=f".{os.path.basename(path)}.",
        suffix=".tmp",
    )
    os.close(fd)
    return temporary


def write(fmt: str, arrays: dict[str, np.ndarray], meta: dict, out: str) -> list[str]:
    """Writes the format's file(s) (temporary names, then renamed); returns their paths."""
    meta_json = json.dumps(meta, indent=2)
    data_tmp = _temporary(out)
    temporaries = [data_tmp]
    try:
        if fmt == "timm":
            from safetensors.numpy import save_file

            save_file(arrays, data_tmp, metadata={"format": "pt", "avrl_jax": meta_json})
        else:
            if fmt == "npz":
                arrays = {**arrays, META_KEY: np.asarray(meta_json)}
            with open(data_tmp, "wb") as f:
                np.savez(f, **arrays)
        if fmt != "npz":
            sidecar_tmp = _temporary(out + SIDECAR_SUFFIX)
            temporaries.append(sidecar_tmp)
            with open(sidecar_tmp, "w") as f:
                f.write(meta_json + "\n")
        # mkstemp creates files readable by the owner only; give them the usual permissions.
        umask = os.umask(0)
        os.umask(umask)
        for temporary in temporaries:
            os.chmod(temporary, 0o666 & ~umask)
        for temporary, path in zip(temporaries, _outputs(out, fmt), strict=True):
            os.replace(temporary, path)
    finally:
        for temporary in temporaries:
            if os.path.exists(temporary):
                os.unlink(temporary)
    return _outputs(out, fmt)


def export(
    workdir: str,
    out: str,
    fmt: str,
    step: int | None = None,
    params: str = "online",
    overwrite: bool = False,
) -> list[str]:
    """Exports the encoder of `workdir` at `step` to `out` in format `fmt`; returns the paths
    written. Raises ExportCliError (or FileNotFoundError / ValueError from the restore) with a
    message naming the problem."""
    from avrl_jax.models.pretrained import PARAMS_CHOICES, restore_encoder

    if fmt not in formats.FORMATS:
        raise ExportCliError(
            f"--format={fmt!r} is not a known format; choose one of {', '.join(formats.FORMATS)}"
        )
    if params not in PARAMS_CHOICES:
        raise ExportCliError(
            f"--params={params!r} is not valid; choose one of {', '.join(PARAMS_CHOICES)}"
        )
    if not paths.isdir(workdir):
        raise ExportCliError(
            f"--workdir={workdir} does not exist; pass a pretraining run's workdir (the "
            "--workdir given to avrl_jax.main)"
        )
    check_outputs(out, fmt, overwrite)
    try:
        train_config, step, _, encoder_params = restore_encoder(workdir, step, params)
    except FileNotFoundError as error:
        fix = "pass --step with an available step, or omit it for the latest"
        if "no checkpoints in" in str(error):
            fix = "train first, or point --workdir at a run that has saved a checkpoint"
        elif "config.json" in str(error):
            fix = ""  # load_train_config's message already says what --workdir must be
        raise ExportCliError(f"{error}{'; ' + fix if fix else ''}") from None
    spec = formats.encoder_spec(encoder_params, int(train_config.env.view_size))
    arrays = convert(fmt, encoder_params, spec)
    return write(fmt, arrays, metadata(fmt, spec, workdir, step, params), out)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of usage + message; argparse's status 2
        print(f"avrl_jax.export: {message}; see python -m avrl_jax.export --help", file=sys.stderr)
        sys.exit(2)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = _Parser(
        prog="python -m avrl_jax.export",
        description="Export a run's encoder (timm safetensors, big_vision npz, or our npz).",
    )
    parser.add_argument("--workdir", required=True, help="the pretraining run's workdir")
    parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
    parser.add_argument(
        "--params", default="online", help="online (default) or ema (the EMA/target network)"
    )
    parser.add_argument("--format", required=True, help=f"one of {', '.join(formats.FORMATS)}")
    parser.add_argument("--out", required=True, help="output file (timm/big_vision: + .json)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # Orbax's read-only checkpoint manager warns about its own options on every restore.
    logging.getLogger("absl").setLevel(logging.ERROR)
    paths.configure_storage_emulator()
    try:
        written = export(
            args.workdir, args.out, args.format, args.step, args.params, args.overwrite
        )
    # ValueError: also a checkpoint whose arrays do not fit config.json's architecture.
    except (ExportCliError, FileNotFoundError, ValueError) as error:
        sys.exit(f"avrl_jax.export: {error}")
    for path in written:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
