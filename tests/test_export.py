"""Exporting a run's encoder (timm, big_vision, npz) and `avrl_jax.load_encoder`.

One smoke run (conftest's `run_main`, `configs/default.py:smoke`: a ViT-mu, depth 1, 16 px,
patch 8, CLS pooling) is trained once for the module; the timm export is loaded into timm on CPU
and must give the JAX encoder's features on real scenes.
"""

import json
import os

import jax
import numpy as np
import pytest
from conftest import cpu_env, module_command, run_command, run_main, run_python
from flax import nnx

from avrl_jax import export as export_cli
from avrl_jax.checkpointing import restore_params
from avrl_jax.data.scenes import SceneSource
from avrl_jax.env.render import render
from avrl_jax.models import export_formats as formats
from avrl_jax.models.params import from_plain_params, to_plain_params
from avrl_jax.models.vit import ViT

TOLERANCE = 1e-4  # max abs difference of timm's features from ours


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A trained smoke run (6 steps, checkpoints at 2, 4, 6)."""
    path = tmp_path_factory.mktemp("run")
    run_main(path, check=True)
    return path


def export(workdir, out, fmt, *args: str):
    """The CLI as a program; returns the finished process."""
    cmd = module_command(
        "avrl_jax.export", "--workdir", str(workdir), "--format", fmt, "--out", str(out), *args
    )
    return run_command(cmd, timeout=300)


def scene_inputs(num: int, size: int, canvas_size: int = 32) -> np.ndarray:
    """`num` embedded scenes rendered to `size` px (the whole scene), f32 in [0, 1], NHWC."""
    source = SceneSource("test", num, canvas_size=canvas_size, seed=0)
    box = np.array([0.0, 0.0, 1.0, 1.0], np.float32)
    return np.stack([np.asarray(render(source[i]["image"], box, size)) for i in range(num)])


def normalise_as(sidecar: dict, views: np.ndarray) -> np.ndarray:
    """Views in [0, 1] normalised as the sidecar says (per channel mean, std)."""
    spec = sidecar["input"]
    assert spec["value_range"] == [0.0, 1.0]
    mean, std = np.asarray(spec["mean"], np.float32), np.asarray(spec["std"], np.float32)
    return ((views - mean) / std).astype(np.float32)


def timm_features(sidecar: dict, state_dict: dict, nhwc: np.ndarray):
    """(pooled, patch tokens) of timm's VisionTransformer built from the sidecar's kwargs."""
    torch = pytest.importorskip("torch", reason="the test extra (setup.py) installs torch")
    pytest.importorskip("timm", reason="the test extra (setup.py) installs timm")
    from timm.models.vision_transformer import VisionTransformer

    model = VisionTransformer(**sidecar["timm_kwargs"]).eval()
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state_dict.items()})
    assert model.norm.eps == sidecar["layer_norm_eps"]
    x = torch.from_numpy(np.ascontiguousarray(nhwc.transpose(0, 3, 1, 2)))
    with torch.no_grad():
        tokens = model.forward_features(x)
        pooled = model.forward_head(tokens)
    return pooled.numpy(), tokens[:, model.num_prefix_tokens :].numpy()


def jax_features(params: dict, image_size: int, nhwc: np.ndarray, **encoder):
    graphdef, _ = to_plain_params(ViT(image_size=image_size, rngs=nnx.Rngs(0), **encoder))
    tokens, pooled = from_plain_params(graphdef, params)(jax.numpy.asarray(nhwc))
    return np.asarray(pooled), np.asarray(tokens)


def smoke_encoder_kwargs(workdir) -> dict:
    return json.load(open(os.path.join(workdir, "config.json")))["model"]["encoder"]


# --------------------------------------------------------------------------------------------
# timm.


def test_timm_export_loads_strictly_into_timm_and_gives_our_features(workdir, tmp_path):
    from safetensors.numpy import load_file

    out = tmp_path / "encoder.safetensors"
    result = export(workdir, out, "timm")
    assert result.returncode == 0, result.stderr[-3000:]
    sidecar = json.load(open(f"{out}.json"))
    assert sidecar["source"] == {"workdir": str(workdir), "step": 6, "params": "online"}
    assert sidecar["input"]["resolution"] == [16, 16]
    assert sidecar["timm_kwargs"]["no_embed_class"] is True
    assert sidecar["timm_kwargs"]["global_pool"] == "token"
    state_dict = load_file(str(out))
    assert state_dict["pos_embed"].shape == (1, 4, 64)  # no position for the CLS token
    assert state_dict["patch_embed.proj.weight"].shape == (64, 3, 8, 8)
    assert state_dict["blocks.0.attn.qkv.weight"].shape == (192, 64)

    views = scene_inputs(6, 16)
    x = normalise_as(sidecar, views)
    # load_state_dict is strict by default: every name and shape must be timm's.
    pooled_timm, tokens_timm = timm_features(sidecar, state_dict, x)
    _, params = restore_params(str(workdir))
    pooled, tokens = jax_features(params, 16, x, **smoke_encoder_kwargs(workdir))
    difference = float(np.abs(pooled_timm - pooled).max())
    print(f"timm vs JAX pooled features: max abs difference {difference:.3g}")
    assert difference < TOLERANCE
    assert float(np.abs(tokens_timm - tokens).max()) < TOLERANCE
    assert float(np.abs(pooled).max()) > 0.1  # features, not zeros


def test_timm_conversion_of_a_deeper_gap_sincos_encoder():
    """No training: 11 blocks (string keys "10" < "2"), mean pooling, sin-cos positions."""
    encoder = dict(variant="mu", patch_size=8, depth=11, pool="gap", posemb="sincos2d")
    _, params = to_plain_params(ViT(image_size=32, rngs=nnx.Rngs(3), **encoder))
    params = jax.tree.map(np.asarray, params)
    spec = formats.encoder_spec(params, 32)
    assert (spec.pool, spec.posemb, spec.depth, spec.num_patches) == ("gap", "sincos2d", 11, 16)
    sidecar = {
        "timm_kwargs": formats.timm_kwargs(spec),
        "layer_norm_eps": formats.LAYER_NORM_EPS,
        "input": formats.input_spec(32, 0.5, 0.25, "NCHW"),
    }
    assert sidecar["timm_kwargs"]["global_pool"] == "avg"
    assert sidecar["timm_kwargs"]["class_token"] is False
    x = normalise_as(sidecar, scene_inputs(3, 32))
    pooled_timm, tokens_timm = timm_features(sidecar, formats.timm_state_dict(params, spec), x)
    pooled, tokens = jax_features(params, 32, x, **encoder)
    assert float(np.abs(pooled_timm - pooled).max()) < TOLERANCE
    assert float(np.abs(tokens_timm - tokens).max()) < TOLERANCE


# --------------------------------------------------------------------------------------------
# big_vision and npz.


@pytest.fixture
def big_vision_smoke_names():
    """big_vision's ViT parameters (big_vision/models/vit.py at 0127fb6, `_Model` with
    nn.scan off, pool_type="tok", posemb="learn", no head) for the smoke encoder: width 64,
    depth 1, 2 heads, mlp_dim 256, patch 8, 16 px (4 patches). Written from big_vision's
    source, not from our converter."""
    block = "Transformer/encoderblock_0"
    mha = f"{block}/MultiHeadDotProductAttention_0"
    names = {
        "embedding/kernel": (8, 8, 3, 64),
        "embedding/bias": (64,),
        "cls": (1, 1, 64),
        "pos_embedding": (1, 4, 64),
        f"{block}/LayerNorm_0/scale": (64,),
        f"{block}/LayerNorm_0/bias": (64,),
        f"{block}/LayerNorm_1/scale": (64,),
        f"{block}/LayerNorm_1/bias": (64,),
        f"{mha}/out/kernel": (2, 32, 64),
        f"{mha}/out/bias": (64,),
        f"{block}/MlpBlock_0/Dense_0/kernel": (64, 256),
        f"{block}/MlpBlock_0/Dense_0/bias": (256,),
        f"{block}/MlpBlock_0/Dense_1/kernel": (256, 64),
        f"{block}/MlpBlock_0/Dense_1/bias": (64,),
        "Transformer/encoder_norm/scale": (64,),
        "Transformer/encoder_norm/bias": (64,),
    }
    for qkv in ("query", "key", "value"):
        names[f"{mha}/{qkv}/kernel"] = (64, 2, 32)
        names[f"{mha}/{qkv}/bias"] = (2, 32)
    return names


def test_big_vision_export_has_big_vision_names_and_shapes(
    workdir, tmp_path, big_vision_smoke_names
):
    out = tmp_path / "encoder.npz"
    export_cli.export(str(workdir), str(out), "big_vision")
    with np.load(out) as npz:
        got = {name: npz[name].shape for name in npz.files}
    assert got == big_vision_smoke_names
    sidecar = json.load(open(f"{out}.json"))
    assert sidecar["big_vision_model"]["pool_type"] == "tok"
    assert sidecar["input"]["mean"] == [0.5] * 3 and sidecar["input"]["std"] == [0.25] * 3
    # Values: the attention kernels are ours as they are, the patch kernel a reshape.
    _, params = restore_params(str(workdir))
    with np.load(out) as npz:
        np.testing.assert_array_equal(
            npz["Transformer/encoderblock_0/MultiHeadDotProductAttention_0/query/kernel"],
            params["blocks"]["0"]["attn"]["query"]["kernel"],
        )
        np.testing.assert_array_equal(
            npz["embedding/kernel"].reshape(192, 64), params["patch_embed"]["kernel"]
        )


def test_npz_export_round_trips_to_our_tree_with_its_metadata(workdir, tmp_path):
    out = tmp_path / "encoder.npz"
    assert export_cli.export(str(workdir), str(out), "npz", step=4) == [str(out)]
    with np.load(out) as npz:
        flat = {name: npz[name] for name in npz.files if name != export_cli.META_KEY}
        meta = json.loads(str(npz[export_cli.META_KEY]))
    _, params = restore_params(str(workdir), 4)
    tree = formats.unflatten(flat)
    assert jax.tree.structure(tree) == jax.tree.structure(dict(params))
    jax.tree.map(np.testing.assert_array_equal, tree, dict(params))
    assert meta["source"]["step"] == 4 and meta["input"]["resolution"] == [16, 16]
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_ema_export_is_the_checkpoints_ema_encoder(workdir, tmp_path):
    def exported(params):
        out = tmp_path / f"{params}.npz"
        export_cli.export(str(workdir), str(out), "npz", params=params)
        with np.load(out) as npz:
            return {name: npz[name] for name in npz.files if name != export_cli.META_KEY}

    ema, online = exported("ema"), exported("online")
    _, target = restore_params(str(workdir), subtree=("target_params", "encoder"))
    assert ema.keys() == online.keys() == formats.flatten(target).keys()
    for name, value in formats.flatten(target).items():
        np.testing.assert_array_equal(ema[name], value)
    assert any(not np.array_equal(ema[name], online[name]) for name in ema)


# An FSDP-sharded checkpoint, saved on 2 (simulated) devices, exported from one.
SAVE_SHARDED = """
import sys

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from avrl_jax.checkpointing import Checkpointer
from avrl_jax.models.export_formats import flatten
from avrl_jax.models.build import build_encoder
from avrl_jax.config_history import write_config
from configs.default import get_config

workdir = sys.argv[1]
config = get_config("smoke")
write_config(config, workdir)
_, params = build_encoder(config, seed=1)
mesh = Mesh(np.array(jax.devices()), ("fsdp",))
spec = lambda x: P(*[None] * (x.ndim - 1), "fsdp") if x.shape[-1] % 2 == 0 else P()
params = jax.tree.map(lambda x: jax.device_put(x, NamedSharding(mesh, spec(x))), params)
kernel = params["blocks"]["0"]["mlp"]["fc1"]["kernel"]
print(len(kernel.sharding.device_set), kernel.addressable_shards[0].data.shape)


@flax.struct.dataclass
class State:
    step: jax.Array
    params: dict
    target_params: dict


state = State(step=jnp.int32(3), params={"encoder": params}, target_params={"encoder": params})
checkpointer = Checkpointer(workdir, every_steps=1, keep=1, async_save=False)
checkpointer.save(3, state, {}, force=True)
checkpointer.close()
np.savez(workdir + "/expected.npz", **flatten(jax.tree.map(np.asarray, params)))
"""


def test_export_of_an_fsdp_sharded_checkpoint_is_whole(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    result = run_python(SAVE_SHARDED, str(run), env=cpu_env(2))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["2", "(64,", "128)"]  # fc1 [64, 256] split over 2 devices
    out = tmp_path / "encoder.npz"
    export_cli.export(str(run), str(out), "npz")
    with np.load(out) as got, np.load(run / "expected.npz") as want:
        assert set(got.files) == {*want.files, export_cli.META_KEY}
        for name in want.files:
            np.testing.assert_array_equal(got[name], want[name])


# --------------------------------------------------------------------------------------------
# load_encoder.


def test_load_encoder_embed_equals_the_probe_feature_path(workdir):
    import avrl_jax
    from avrl_jax.evaluation import features, tasks

    encoder = avrl_jax.load_encoder(str(workdir))
    assert (encoder.step, encoder.params_kind, encoder.image_size) == (6, "online", 16)
    task = dict(name="count", num_train=5, num_test=5, seed=0, canvas_size=40)
    split = tasks.make_split(task, "test", 16)
    probe = features.extract_labelled(
        (encoder.graphdef, encoder.params), split.chunks(), batch_size=4, keep_tokens=True
    )
    source = SceneSource("test", 5, canvas_size=40, seed=0)
    images = np.stack([source[i]["image"] for i in range(5)])  # uint8 [5, 40, 40, 3]
    pooled, tokens = encoder.embed(images, tokens=True, batch_size=4)
    assert pooled.shape == (5, 64) and tokens.shape == (5, 4, 64)
    assert pooled.dtype == tokens.dtype == np.float32
    np.testing.assert_allclose(pooled, probe.pooled, atol=1e-5, rtol=0)
    np.testing.assert_allclose(tokens, probe.tokens, atol=1e-5, rtol=0)
    # The same batch shape gives the same bits whatever the other rows hold: image 4 went
    # through the 5-image call with zero padding ([4, 0, 0, 0]), here beside images 1-3.
    # Another batch shape (2 images run as a batch of 2) runs other XLA kernels: equal up to
    # float32 round-off.
    np.testing.assert_array_equal(encoder.embed(images[1:], batch_size=4), pooled[1:])
    np.testing.assert_allclose(encoder.embed(images[:2], batch_size=4), pooled[:2], atol=1e-6)


def test_import_avrl_jax_does_not_import_jax():
    result = run_python(
        "import sys, avrl_jax; print('jax' in sys.modules, 'load_encoder' in dir(avrl_jax))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True"]


# --------------------------------------------------------------------------------------------
# CLI errors: one line, no traceback.


def assert_one_line_error(result, *fragments: str, status: int = 1) -> None:
    assert result.returncode == status, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("avrl_jax.export: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_cli_errors_are_one_line(workdir, tmp_path):
    missing = tmp_path / "no_such_run"
    assert_one_line_error(export(missing, tmp_path / "a", "timm"), str(missing), "--workdir")
    out = tmp_path / "exists.npz"
    out.write_bytes(b"keep me")
    assert_one_line_error(export(workdir, out, "npz"), str(out), "--overwrite")
    assert out.read_bytes() == b"keep me"
    assert_one_line_error(export(workdir, tmp_path / "b", "onnx"), "onnx", "timm, big_vision")
    assert_one_line_error(
        export(workdir, tmp_path / "c", "npz", "--params", "teacher"), "teacher", "online, ema"
    )
    assert_one_line_error(export(workdir, tmp_path / "d", "npz", "--step", "5"), "step 5", "--step")
    no_out = run_command(module_command("avrl_jax.export", "--workdir", str(workdir)))
    assert_one_line_error(no_out, "--format, --out", "--help", status=2)
    assert not [p for p in os.listdir(tmp_path) if p != "exists.npz"]
    result = export(workdir, out, "npz", "--overwrite")
    assert result.returncode == 0, result.stderr[-3000:]
    assert out.read_bytes() != b"keep me"


def test_a_conv_stem_encoder_exports_as_npz_only():
    model = ViT(variant="mu", patch_size=8, image_size=32, stem="conv", rngs=nnx.Rngs(0))
    _, params = to_plain_params(model)
    spec = formats.encoder_spec(params, 32)
    assert (spec.stem, spec.patch_size, spec.width, spec.grid) == ("conv", 8, 64, 4)
    for convert in (formats.timm_state_dict, formats.big_vision_params):
        with pytest.raises(formats.ExportError, match="convolutional stem.*--format npz"):
            convert(params, spec)
    assert formats.architecture(spec)["stem"] == "conv"
    assert set(formats.flatten(params)) >= {"conv_stem/proj/kernel", "blocks/0/mlp/fc1/kernel"}
