"""pyrogen.networks: the shared MLP (layout, initialisation order) and the frozen() helper."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pyrogen.gan import mlp_discriminator
from pyrogen.networks import MLP, check_hidden, frozen
from pyrogen.vae import SSVAE, VAE


def test_mlp_initialises_like_the_hand_built_sequence():
    """Same seed, same weights as Linear/ReLU built by hand (the VAEs' earlier builder)."""
    torch.manual_seed(7)
    net = MLP(5, 3, (4, 6))
    torch.manual_seed(7)
    by_hand = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    assert list(net.state_dict()) == list(by_hand.state_dict())
    for a, b in zip(net.state_dict().values(), by_hand.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert isinstance(net[-1], nn.Identity) and net[-2] is net[4]  # the output module last


def test_vae_and_gan_networks_are_the_shared_mlp():
    vae, ssvae = VAE(8, 2, hidden=(4,)), SSVAE(8, 2, 3, hidden=(4,))
    for net in (vae.encoder, vae.decoder, ssvae.classifier, ssvae.encoder, ssvae.decoder):
        assert type(net) is MLP
    assert type(mlp_discriminator(3)) is MLP
    assert list(vae.encoder.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_check_hidden():
    assert check_hidden(()) == ()
    with pytest.raises(TypeError, match="hidden must be a tuple of layer widths"):
        check_hidden("256")
    with pytest.raises(ValueError, match=r"hidden\[1\]"):
        check_hidden((3, 0))


def test_frozen_switches_gradients_off_and_restores_them():
    net = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    net[1].bias.requires_grad_(False)  # already frozen: must stay so
    z = torch.ones(1, 2, requires_grad=True)
    with frozen(net):
        assert not any(p.requires_grad for p in net.parameters())
        net(z).sum().backward()
    assert all(p.grad is None for p in net.parameters())
    assert z.grad is not None
    flags = [p.requires_grad for p in net.parameters()]
    assert flags == [True, True, True, False]


def test_frozen_restores_on_exception_and_shares_parameters():
    a = nn.Linear(2, 2)
    b = nn.Sequential(a, nn.Linear(2, 1))  # a's parameters belong to both modules
    with pytest.raises(RuntimeError, match="boom"), frozen(a, b):
        assert not a.weight.requires_grad
        raise RuntimeError("boom")
    assert all(p.requires_grad for p in b.parameters())


def test_frozen_rejects_non_modules():
    with (
        pytest.raises(TypeError, match="argument 1 is Tensor"),
        frozen(nn.Linear(1, 1), torch.ones(1)),
    ):
        pass
