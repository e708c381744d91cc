"""DeepSets networks: published parameter counts, permutation symmetry, O(N) cost, the exact fast path, configs."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from torch.utils.flop_counter import FlopCounterMode

import hetagents_env
from agents.config import ConfigError
from agents.networks import (
    CallablePolicy,
    DeepSetsConfig,
    count_parameters,
    default_features,
    make_actor,
    make_critic,
    published_config,
)

PUBLISHED_COUNTS = {"identity": 49_409, "moments": 49_793, "mlp": 66_821}


def investment(n: int = 16, dtype=torch.float32, **params):
    return hetagents_env.make_economy("Investment-v0", n_agents=n, dtype=dtype, **params)


def krusell_smith(n: int = 12, dtype=torch.float32):
    return hetagents_env.make_economy("KrusellSmith-v0", n_agents=n, dtype=dtype)


def random_state(economy, batch: int, seed: int = 0) -> TensorDict:
    """A state with heterogeneous agents (the initial KS state has identical k)."""
    gen = economy.generator(seed)
    state = economy.initial_state(batch, gen)
    if "k" in state.keys():
        state["k"] = 30.0 + 20.0 * torch.rand(state["k"].shape, generator=gen, dtype=economy.dtype)
    return state


def permute_agents(state: TensorDict, perm: torch.Tensor) -> TensorDict:
    """Permute the per-agent entries (B, N) of every economy; aggregates stay."""
    out = state.clone()
    for key, value in state.items():
        if value.dim() == 2:
            out[key] = value[:, perm]
    return out


# ---------------------------------------------------------------------------------------------- parameter counts
@pytest.mark.parametrize("phi", ["identity", "moments", "mlp"])
def test_published_parameter_counts(phi):
    net = make_actor(investment(128), published_config(phi), seed=0)
    assert count_parameters(net) == PUBLISHED_COUNTS[phi]


def test_published_counts_do_not_depend_on_n():
    for n in (1, 7, 1024):
        assert count_parameters(make_actor(investment(n), published_config("relu"))) == PUBLISHED_COUNTS["mlp"]


def test_hidden_bias_and_latent_change_the_count():
    eco = investment(8)
    assert count_parameters(make_actor(eco, published_config("identity", hidden_bias=True))) == 49_409 + 4 * 128
    # L = 16 (published 69.9K): φ output 128·16 + 16 more, ρ input 128·12 more
    assert count_parameters(make_actor(eco, published_config("mlp", latent=16))) == 66_821 + 128 * 12 + 12 + 128 * 12


# ---------------------------------------------------------------------------------------------- symmetry
CASES = [
    ("investment", "identity", "actor"),
    ("investment", "moments", "actor"),
    ("investment", "mlp", "actor"),
    ("investment", "mlp", "critic"),
    ("ks", "identity", "actor"),
    ("ks", "mlp", "actor"),
    ("ks", "moments", "critic"),
]


def build(case):
    economy_name, phi, kind = case
    eco = investment(16) if economy_name == "investment" else krusell_smith(12)
    config = DeepSetsConfig(phi=phi, phi_widths=(32, 32), rho_widths=(32, 32), hidden_bias=True,
                            activation="tanh", bias_init="torch")
    if economy_name == "ks" and kind == "actor":
        config = config.replace(head="sigmoid")
    net = (make_actor if kind == "actor" else make_critic)(eco, config, seed=3)
    return eco, net


@pytest.mark.parametrize("case", CASES, ids=["-".join(c) for c in CASES])
def test_permutation_invariance_and_equivariance(case):
    eco, net = build(case)
    state = random_state(eco, batch=5)
    gen = torch.Generator().manual_seed(11)
    with torch.no_grad():
        out, summary = net(state), net.summary(state)
        for _ in range(5):
            perm = torch.randperm(eco.n_agents, generator=gen)
            permuted = permute_agents(state, perm)
            # the population summary is invariant, the per-agent outputs are permuted the same way
            torch.testing.assert_close(net.summary(permuted), summary, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(net(permuted), out[:, perm], rtol=1e-5, atol=1e-6)
    assert out.shape == (5, eco.n_agents)


def test_outputs_differ_across_agents_only_through_own_state():
    eco, net = build(("ks", "mlp", "actor"))
    state = random_state(eco, batch=3)
    state["k"][:, 1] = state["k"][:, 0]
    state["e"][:, 1] = state["e"][:, 0]
    with torch.no_grad():
        out = net(state)
    torch.testing.assert_close(out[:, 0], out[:, 1])


def test_investment_actor_depends_on_the_population_only():
    """μ = 0: the published policy gives every firm the same investment."""
    eco = investment(16)
    net = make_actor(eco, published_config("relu"), seed=0)
    out = net(random_state(eco, 4))
    torch.testing.assert_close(out, out[:, :1].expand_as(out))


# ---------------------------------------------------------------------------------------------- cost O(B·N)
def flops(net, state) -> int:
    with FlopCounterMode(display=False) as counter:
        net(state)
    return counter.get_total_flops()


@pytest.mark.parametrize("case", [("investment", "mlp", "critic"), ("ks", "mlp", "actor")], ids=str)
def test_cost_is_linear_in_the_number_of_agents(case):
    economy_name, phi, kind = case
    config = DeepSetsConfig(phi=phi, phi_widths=(16,), rho_widths=(16, 16), hidden_bias=True)
    counts = []
    for n in (64, 128, 256):
        eco = investment(n) if economy_name == "investment" else krusell_smith(n)
        net = (make_actor if kind == "actor" else make_critic)(eco, config, seed=0)
        counts.append(flops(net, random_state(eco, batch=2)))
    # doubling N doubles the work (O(N)); an O(N²) network would quadruple it
    assert counts[1] / counts[0] == pytest.approx(2.0, rel=0.05)
    assert counts[2] / counts[1] == pytest.approx(2.0, rel=0.05)


def test_shapes_for_many_sizes():
    for n in (1, 2, 33, 512):
        eco = investment(n)
        net = make_actor(eco, DeepSetsConfig(phi="mlp", phi_widths=(8,), rho_widths=(8,)))
        assert net(eco.initial_state(3)).shape == (3, n)
        ks = krusell_smith(n)
        net = make_actor(ks, DeepSetsConfig(phi="moments", powers=(1, 2), rho_widths=(8,), head="sigmoid"))
        out = net(random_state(ks, 2))
        assert out.shape == (2, n) and bool(((out > 0) & (out < 1)).all())


# ---------------------------------------------------------------------------------------------- exact fast path
def test_homogeneous_fast_path_is_exact():
    """A bias-free ReLU φ on a scalar: mean φ(x_j) = out(mean(x⁺) g(1) + mean(x⁻) g(−1)) — values and gradients."""
    eco = investment(32, dtype=torch.float64)
    fast = make_actor(eco, published_config("relu"), seed=5)
    slow = make_actor(eco, published_config("relu", homogeneous_fast_path=False), seed=5)
    assert fast.phi.homogeneous and not slow.phi.homogeneous
    state = eco.initial_state(6)
    state["x"] = state["x"] * torch.where(torch.rand(state["x"].shape) < 0.2, -1.0, 1.0).double()  # some x < 0
    torch.testing.assert_close(fast(state), slow(state), rtol=1e-12, atol=1e-12)
    fast(state).square().sum().backward()
    slow(state).square().sum().backward()
    for (name, p), q in zip(fast.named_parameters(), slow.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-10, atol=1e-12, msg=name)


def test_fast_path_only_where_exact():
    eco = investment(8)
    assert not make_actor(eco, published_config("relu", hidden_bias=True)).phi.homogeneous
    assert not make_actor(eco, published_config("relu", phi_activation="tanh")).phi.homogeneous
    ks = krusell_smith(8)  # φ over k only: scalar, so allowed
    assert make_actor(ks, DeepSetsConfig(phi="mlp", set_features=("k", "e"))).phi.homogeneous is False


# ---------------------------------------------------------------------------------------------- plumbing
def test_dtype_device_and_seed():
    eco = investment(8, dtype=torch.float64)
    a, b = make_actor(eco, seed=1), make_actor(eco, seed=1)
    assert all(p.dtype == torch.float64 for p in a.parameters())
    state = eco.initial_state(2)
    torch.testing.assert_close(a(state), b(state))
    rng_before = torch.random.get_rng_state()
    make_actor(eco, seed=2)
    assert torch.equal(rng_before, torch.random.get_rng_state()), "a seeded build must not touch the global RNG"


def test_zero_bias_init_and_output_bias_init():
    eco = investment(8)
    net = make_actor(eco, DeepSetsConfig(phi="mlp", hidden_bias=True, bias_init="zeros"))
    assert all(float(m.detach().abs().max()) == 0.0 for name, m in net.named_parameters() if name.endswith("bias"))
    net = make_actor(eco, DeepSetsConfig(phi="identity", output_bias_init=0.5))
    assert float(net.rho[-1].bias.detach()) == 0.5


def test_default_features():
    f = default_features(investment(4))
    assert f.set == ("x",) and f.own == () and f.aggregate == ()
    f = default_features(krusell_smith(4))
    assert f.set == ("k",) and f.own == ("k", "e") and f.aggregate == ("z",)


def test_callable_policy_module():
    eco = investment(8)
    module = CallablePolicy(eco.lq_policy)
    state = eco.initial_state(2)
    torch.testing.assert_close(module(state), eco.lq_policy(state))
    assert count_parameters(module) == 0


@pytest.mark.parametrize(
    "bad, words",
    [
        ({"phi_width": (3,)}, "unknown key 'phi_width'"),
        ({"phi": "relu"}, "phi"),
        ({"latent": 0}, "latent"),
        ({"activation": "swish"}, "activation"),
        ({"rho_widths": [128, "x"]}, "rho_widths"),
        ({"hidden_bias": "yes"}, "hidden_bias"),
        ({"scale": [["k", -1.0]]}, "scale"),
        ({"shift": [["x", float("inf")]]}, "shift"),
    ],
)
def test_bad_config_names_the_key(bad, words):
    with pytest.raises(ConfigError, match=words):
        DeepSetsConfig.from_dict(bad)


def test_shift_centres_the_input_before_scaling():
    economy = hetagents_env.make_economy("KrusellSmith-v0", n_agents=8)
    k_ss = economy.params.steady_state_capital
    state = economy.initial_state(3, economy.generator(0))
    state["k"] = state["k"] * torch.linspace(0.5, 1.5, 8)
    shifted = make_actor(economy, DeepSetsConfig(phi="mlp", hidden_bias=True, shift=(("k", 10.0),)), seed=4)
    plain = make_actor(economy, DeepSetsConfig(phi="mlp", hidden_bias=True), seed=4)
    moved = state.clone()
    moved["k"] = state["k"] - 10.0
    assert torch.allclose(shifted(state), plain(moved))  # (k − 10) / k_ss, the economy's default scale kept
    assert shifted.features.scale == (("k", k_ss),)


def test_config_round_trip():
    config = published_config("moments", powers=(1, 2), rho_widths=(64, 64))
    assert DeepSetsConfig.from_dict(config.to_dict()) == config


# ---------------------------------------------------------------------------------------------- public pieces
def test_public_pieces_reproduce_forward():
    """``agent_features`` averages to ``summary``; ``forward_with_summary`` with that summary is ``forward``;
    ``set_output_dim`` gives every agent a vector."""
    from agents.networks import DeepSets, DeepSetsConfig, Features

    features = Features(set=("k", "e"), own=("k", "e"), aggregate=("z",), scale=())
    g = torch.Generator().manual_seed(0)
    state = TensorDict({"k": torch.rand(3, 7, generator=g), "e": torch.rand(3, 7, generator=g),
                        "z": torch.rand(3, generator=g)}, batch_size=[3])
    for phi in ("identity", "moments", "mlp"):
        net = DeepSets(features, DeepSetsConfig(phi=phi, latent=3, phi_widths=(8,), rho_widths=(8,), scale=()))
        summary = net.summary(state)
        torch.testing.assert_close(net.agent_features(state).mean(-2), summary)
        torch.testing.assert_close(net.forward_with_summary(state, summary), net(state))
        assert net.output_layer is net.rho[-1]
        net.set_output_dim(3, seed=0, bias=(1.0, 2.0, 3.0))
        out = net(state)
        assert out.shape == (3, 7, 3)
        torch.testing.assert_close(net.output_layer.bias.detach(), torch.tensor([1.0, 2.0, 3.0]))
        torch.testing.assert_close(net.forward_with_summary(state, summary), out)
