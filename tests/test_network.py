"""DisyreUNet (method_numbers.md ("Network")): layout, parameter counts, shapes, conditioning, gradients, learning."""
from __future__ import annotations

import math

import pytest
import torch

from disyre_v2.training.network import NETWORK_REGISTRY, DisyreUNet, build_network
from disyre_v2.training.network.cutpaste_net import CutPasteNet
from disyre_v2.training.network.time_embedding import sinusoidal_embedding
from disyre_v2.training.network.vae import ConvVAE

# The "network" kwargs of plans.json (notes/PLANS_SCHEMA.md) for the two configurations.
PAPER_KWARGS = dict(
    in_channels=1, out_channels=1, widths=[32, 64, 96, 128, 256, 256],
    num_res_blocks_down=2, num_res_blocks_up=3, attention_levels=[4], mid_attention=True,
    attention_head_dim=8, norm_groups=32, time_embed_dim=32, time_hidden_dim=128, conditional=True,
)
SMALL_KWARGS = dict(PAPER_KWARGS, widths=[16, 32, 64, 128], attention_levels=[3], norm_groups=8,
                    num_res_blocks_down=1, num_res_blocks_up=1)
# The paper's layout at half the small widths: fast enough for learning tests on a shared CPU.
TINY_KWARGS = dict(PAPER_KWARGS, widths=[8, 16, 32, 64], attention_levels=[3], norm_groups=8)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --- the layout, written as a parameter count ------------------------------------------------
def conv(a: int, b: int, k: int) -> int:
    return a * b * k * k + b


def norm(c: int) -> int:
    return 2 * c


def res(a: int, b: int, time: int | None) -> int:
    time_proj = time * b + b if time else 0
    shortcut = conv(a, b, 1) if a != b else 0
    return norm(a) + conv(a, b, 3) + time_proj + norm(b) + conv(b, b, 3) + shortcut


def attn(c: int) -> int:
    return norm(c) + (c * 3 * c + 3 * c) + (c * c + c)


def expected_count(in_channels, out_channels, widths, num_res_blocks_down, num_res_blocks_up,
                   attention_levels, mid_attention, attention_head_dim, norm_groups,
                   time_embed_dim, time_hidden_dim, conditional=True) -> int:
    """conv_in; per level: res blocks (+attention), stride-2 conv; mid res-attn-res; decoder res
    blocks each taking one skip of its level (level input + every encoder block output), nearest
    upsampling + conv; GN + conv_out. Time MLP: Linear(E, H), Linear(H, H)."""
    time = time_hidden_dim if conditional else None
    total = conv(in_channels, widths[0], 3)
    if conditional:
        total += time_embed_dim * time_hidden_dim + time_hidden_dim + time_hidden_dim ** 2 + time_hidden_dim
    channels, skips = widths[0], []
    for level, width in enumerate(widths):
        level_skips = [channels]
        for _ in range(num_res_blocks_down):
            total += res(channels, width, time) + (attn(width) if level in attention_levels else 0)
            channels = width
            level_skips.append(channels)
        skips.append(level_skips)
        if level < len(widths) - 1:
            total += conv(channels, channels, 3)
    total += 2 * res(channels, channels, time) + (attn(channels) if mid_attention else 0)
    for level in reversed(range(len(widths))):
        pending = list(skips[level])
        for _ in range(num_res_blocks_up):
            skip = pending.pop() if pending else 0
            total += res(channels + skip, widths[level], time)
            total += attn(widths[level]) if level in attention_levels else 0
            channels = widths[level]
        if level > 0:
            total += conv(channels, channels, 3)
    return total + norm(channels) + conv(channels, out_channels, 3)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # The test machine's 2 cores are shared: two intra-op threads competing with other jobs made
    # the overfitting test 15x slower than one thread (measured 184 s vs 12 s).
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def paper_model() -> DisyreUNet:
    torch.manual_seed(0)
    return build_network({"class_name": "DisyreUNet", "kwargs": PAPER_KWARGS}).eval()


# --- parameter counts --------------------------------------------------------------------------
def test_paper_configuration_has_26_3_million_parameters(paper_model):
    count = n_params(paper_model)
    assert abs(count - 26.3e6) <= 0.5e6  # method_numbers.md ("Network")
    assert count == expected_count(**PAPER_KWARGS) == 26_296_929


def test_small_configuration_parameter_count():
    model = DisyreUNet(**SMALL_KWARGS)
    # documentation/explanation/method_numbers.md: about 1-2 M. One block per level each way at widths (16, 32, 64, 128); the paper's
    # 2-down/3-up layout at these widths would have 3.99 M.
    assert n_params(model) == expected_count(**SMALL_KWARGS) == 2_142_833
    assert n_params(DisyreUNet(**dict(SMALL_KWARGS, num_res_blocks_down=2, num_res_blocks_up=3))) == 3_986_401


@pytest.mark.parametrize("down, up", [(1, 2), (2, 1), (1, 3)])
def test_other_block_counts_follow_the_same_layout(down, up):
    kwargs = dict(TINY_KWARGS, num_res_blocks_down=down, num_res_blocks_up=up)
    model = DisyreUNet(**kwargs)
    assert n_params(model) == expected_count(**kwargs)
    assert model(torch.rand(2, 1, 16, 16), torch.tensor([0, 99])).shape == (2, 1, 16, 16)


def test_unconditional_model_has_no_time_parameters_and_ignores_t():
    torch.manual_seed(0)
    kwargs = dict(SMALL_KWARGS, conditional=False)
    model = DisyreUNet(**kwargs).eval()
    names = [name for name, _ in model.named_parameters()]
    assert not [n for n in names if "time" in n]
    assert n_params(model) == expected_count(**kwargs)
    x = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        out = model(x)
        assert torch.equal(out, model(x, t=None))
        assert torch.equal(out, model(x, torch.tensor([0, 99])))


# --- shapes and input checks ---------------------------------------------------------------
@pytest.mark.parametrize("channels_in, channels_out, height, width",
                         [(1, 1, 8, 8), (2, 2, 16, 24), (2, 1, 64, 64), (3, 1, 32, 16)])
def test_output_shape_equals_input_shape(channels_in, channels_out, height, width):
    model = DisyreUNet(**dict(TINY_KWARGS, in_channels=channels_in, out_channels=channels_out))
    x = torch.rand(3, channels_in, height, width)
    with torch.no_grad():
        out = model(x, torch.tensor([0, 50, 99]))
    assert out.shape == (3, channels_out, height, width)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_paper_model_forward_on_one_64_slice(paper_model):
    with torch.no_grad():
        out = paper_model(torch.rand(1, 1, 64, 64), torch.tensor([25]))
    assert out.shape == (1, 1, 64, 64) and torch.isfinite(out).all()


@pytest.mark.parametrize("kwargs, size, divisor",
                         [(TINY_KWARGS, (60, 64), 8), (TINY_KWARGS, (64, 12), 8),
                          (PAPER_KWARGS, (80, 80), 32), (PAPER_KWARGS, (16, 16), 32)])
def test_patch_size_not_divisible_raises_naming_size_and_divisor(kwargs, size, divisor, paper_model):
    model = paper_model if kwargs is PAPER_KWARGS else DisyreUNet(**kwargs)
    assert model.size_divisor == divisor
    message = f"patch size {size[0]}x{size[1]} is not divisible by {divisor}"
    with pytest.raises(ValueError, match=message):
        model(torch.rand(1, 1, *size), torch.tensor([0]))


def test_bad_inputs_raise_clear_errors():
    model = DisyreUNet(**TINY_KWARGS)
    x = torch.rand(2, 1, 16, 16)
    with pytest.raises(ValueError, match=r"expects input of shape \(B, 1, H, W\), got \(2, 2, 16, 16\)"):
        model(torch.rand(2, 2, 16, 16), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"expects input of shape .* got \(1, 16, 16\)"):
        model(torch.rand(1, 16, 16), torch.tensor([0]))
    with pytest.raises(ValueError, match="conditional: forward\\(x, t\\) needs the levels t"):
        model(x)
    with pytest.raises(ValueError, match="integer severity levels .* got dtype torch.float32"):
        model(x, torch.tensor([0.1, 0.5]))
    with pytest.raises(ValueError, match=r"t must have shape \(2,\) .* got \(3,\)"):
        model(x, torch.tensor([0, 1, 2]))


@pytest.mark.parametrize("change, message", [
    (dict(widths=[8, 12, 32, 64]), "12 channels cannot be split into norm_groups=8"),
    (dict(attention_levels=[4]), r"attention_levels \[4\] are not levels of a 4-level U-Net"),
    (dict(attention_head_dim=5), "needs attention_head_dim dividing it, got 5"),
    (dict(num_res_blocks_down=0), "must be >= 1, got 0, 3"),
    (dict(widths=[]), "widths must be a non-empty list"),
    (dict(time_embed_dim=1), "time_embed_dim must be >= 2"),
])
def test_invalid_configuration_raises(change, message):
    with pytest.raises(ValueError, match=message):
        DisyreUNet(**dict(TINY_KWARGS, **change))


# --- time conditioning -----------------------------------------------------------------------
def test_sinusoidal_embedding_values():
    # dim 4: frequencies 1 and 1/10000^(1/2) = 0.01; layout [cos | sin].
    emb = sinusoidal_embedding(torch.tensor([0, 1, 50]), 4)
    expected = torch.tensor([[1.0, 1.0, 0.0, 0.0],
                             [math.cos(1), math.cos(0.01), math.sin(1), math.sin(0.01)],
                             [math.cos(50), math.cos(0.5), math.sin(50), math.sin(0.5)]])
    torch.testing.assert_close(emb, expected)
    assert sinusoidal_embedding(torch.tensor([3]), 5)[0, -1] == 0  # odd dim: zero pad


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_conditional_output_depends_on_t(seed):
    torch.manual_seed(seed)
    model = DisyreUNet(**TINY_KWARGS).eval()
    x = torch.rand(1, 1, 16, 16).expand(3, -1, -1, -1)
    with torch.no_grad():
        out = model(x, torch.tensor([0, 1, 99]))
        assert (out[0] - out[1]).abs().max() > 1e-5
        assert (out[0] - out[2]).abs().max() > 1e-4
        # One int is broadcast to the batch.
        torch.testing.assert_close(model(x, 99), model(x, torch.full((3,), 99)))


def test_same_seed_same_weights_and_output():
    x, t = torch.rand(2, 1, 16, 16), torch.tensor([3, 7])
    outputs = []
    for _ in range(2):
        torch.manual_seed(123)
        with torch.no_grad():
            outputs.append(DisyreUNet(**TINY_KWARGS)(x, t))
    assert torch.equal(*outputs)


# --- gradients and learning -------------------------------------------------------------------
@pytest.mark.parametrize("conditional", [True, False])
def test_gradients_reach_every_parameter(conditional):
    torch.manual_seed(0)
    model = DisyreUNet(**dict(SMALL_KWARGS, conditional=conditional))
    x, target = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    torch.nn.functional.mse_loss(model(x, torch.tensor([5, 80])), target).backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert no_grad == []


def test_tiny_network_overfits_one_batch():
    torch.manual_seed(0)
    model = DisyreUNet(**TINY_KWARGS)
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(4, 1, 32, 32, generator=generator)
    target = torch.rand(4, 1, 32, 32, generator=generator)
    t = torch.tensor([0, 10, 50, 99])
    # Reference: the loss of the best constant prediction (the target's variance).
    baseline = torch.nn.functional.mse_loss(target, target.mean().expand_as(target)).item()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(100):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x, t), target)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        final = torch.nn.functional.mse_loss(model(x, t), target).item()
    assert final < baseline / 10


# --- builder ---------------------------------------------------------------------------------
def test_build_network_from_plans_entry():
    model = build_network({"class_name": "DisyreUNet", "kwargs": SMALL_KWARGS})
    assert isinstance(model, DisyreUNet) and model.size_divisor == 8
    assert NETWORK_REGISTRY == {"DisyreUNet": DisyreUNet, "ConvVAE": ConvVAE, "CutPasteNet": CutPasteNet}


@pytest.mark.parametrize("plans, message", [
    ({"class_name": "PlainUNet", "kwargs": {}}, "unknown network class_name 'PlainUNet' .* known: ConvVAE, CutPasteNet, DisyreUNet"),
    ({"kwargs": SMALL_KWARGS}, "must be a mapping with 'class_name' and 'kwargs'"),
    ({"class_name": "DisyreUNet", "kwargs": dict(SMALL_KWARGS, width=[8])},
     "do not fit DisyreUNet: .*unexpected keyword argument 'width'"),
    ({"class_name": "DisyreUNet", "kwargs": {"in_channels": 1}}, "do not fit DisyreUNet: .*missing"),
    ({"class_name": "DisyreUNet", "kwargs": [1, 2]}, "'kwargs' must be a mapping, got list"),
])
def test_build_network_rejects_bad_plans(plans, message):
    with pytest.raises(ValueError, match=message):
        build_network(plans)
