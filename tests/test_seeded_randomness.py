"""SeededRandomness: every synthesis and augmentation transform draws from its own Generator, which
``reseed`` restarts, so what a batch gets depends on the batch's seed (not on the seed the transform
was built with, nor on the draws it made before: the worker processes' contract) and, for DAG and
MOOD22, on their foreign-patch cache, content that a resume restores from the checkpoint."""
import numpy as np
import pytest

from disyre_v2.training.baselines.coarse_noise import CoarseNoiseTransform
from disyre_v2.training.baselines.cutpaste import CutPasteTransform
from disyre_v2.training.baselines.mood22_anomalies import Mood22AnomalyTransform, Mood22Parameters
from disyre_v2.training.baselines.poisson_interpolation import PoissonInterpolationTransform
from disyre_v2.training.seeded import SeededRandomness
from disyre_v2.training.spatial_augmentation import BatchedSpatialTransform
from tests.test_anomaly_synthesis import make_batch, synthesizer


def spatial(seed):
    transform = BatchedSpatialTransform(1.0, 15.0, 1.0, (0.8, 1.2), 1.0)
    transform.reseed(seed)
    return transform


BUILDERS = {
    "coarse noise": lambda seed: CoarseNoiseTransform(resolution=4, seed=seed),
    "CutPaste": lambda seed: CutPasteTransform(crop=8, seed=seed),
    "PII": lambda seed: PoissonInterpolationTransform(seed=seed),
    "MOOD22": lambda seed: Mood22AnomalyTransform(Mood22Parameters(library_size=4), seed=seed, library_seed=0),
    "spatial augmentation": spatial,
}


def run(transform):
    data, mask = make_batch(4, channels=2, seed=3)
    out = transform(data=data.copy(), mask=mask.copy(), seg=mask.copy())
    return {key: np.asarray(value) for key, value in out.items() if key in ("data", "target", "label", "seg")}


# Transforms whose earlier batches fill a foreign-patch cache: compared with the same (empty) cache.
WITH_CACHE = {"MOOD22"}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_a_reseeded_transform_depends_on_the_batch_seed_only(name):
    first, second = BUILDERS[name](1), BUILDERS[name](2)
    if name not in WITH_CACHE:
        run(first)  # the first has drawn before; the second has not
    first.reseed(np.random.SeedSequence(7))
    second.reseed(np.random.SeedSequence(7))
    a, b = run(first), run(second)
    assert a.keys() == b.keys() and "data" in a
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    second.reseed(np.random.SeedSequence(8))
    assert not np.array_equal(run(second)["data"], a["data"]), "another batch seed must draw other anomalies"


def test_the_dag_synthesizer_follows_the_same_contract():
    data, mask = make_batch(6, channels=1, seed=1)
    first, second = synthesizer(seed=1), synthesizer(seed=2)
    first.reseed(5)
    second.reseed(5)
    a, b = first(data, mask), second(data, mask)
    np.testing.assert_array_equal(a.corrupted, b.corrupted)
    np.testing.assert_array_equal(a.level, b.level)
    assert not np.array_equal(a.corrupted, data), "DAG at anomaly probability 1 must corrupt the batch"
    assert isinstance(first, SeededRandomness)


def test_reseed_restarts_numpys_generator_from_the_seed():
    holder = SeededRandomness()
    holder.reseed(np.random.SeedSequence(11))
    assert holder.rng.random() == np.random.default_rng(np.random.SeedSequence(11)).random()
