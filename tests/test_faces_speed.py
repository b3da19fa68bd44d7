"""The speed-ups of the face path give the same answers: channels-last max-pooling (bit for bit), the
file opened once, and frames decoded ahead on a helper thread (the same items, order and errors)."""

from __future__ import annotations

import numpy as np
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


def _count_opens(monkeypatch) -> list[str]:
    from emofuse.media import probe, video

    opened: list[str] = []
    real = probe._open

    def counting(path):
        opened.append(str(path))
        return real(path)

    monkeypatch.setattr(probe, "_open", counting)
    monkeypatch.setattr(video, "_open", counting)
    return opened


def test_the_face_part_opens_a_file_once(tmp_path, monkeypatch):
    from test_video_seek import _moving_frames, _write
    from videogen import tone, write_audio_only

    from emofuse.faces.pipeline import FaceSequence
    from emofuse.inference.audio_visual import AudioVisualPredictor
    from emofuse.media.video import NoVideoTrackError, has_video_track, probe_video

    av = AudioVisualPredictor(face={"detector": "haar"})
    clip = _write(tmp_path / "clip.mp4", _moving_frames(43), options={"g": "10", "bf": "0"})
    song = write_audio_only(tmp_path / "song.mp4", tone(1.0), cover=True)
    speech = write_audio_only(tmp_path / "speech.mp4", tone(1.0))
    opened = _count_opens(monkeypatch)
    assert isinstance(av.read_face(clip), FaceSequence) and opened == [str(clip)]  # probe and frames: one open
    opened.clear()
    assert av.read_face(song) is None and av.read_face(speech) is None and len(opened) == 2
    for path in (song, speech):  # NoVideoTrackError is exactly has_video_track's False
        assert not has_video_track(path)
        with pytest.raises(NoVideoTrackError, match="no video track"):
            probe_video(path)


def test_prefetched_gives_the_items_in_order_and_the_error_in_its_place():
    import threading

    from emofuse.faces.prefetch import prefetched

    def numbers(n, fail_at=None):
        for i in range(n):
            if i == fail_at:
                raise ValueError(f"item {i}")
            yield i

    for depth in (0, 1, 3):
        assert list(prefetched(numbers(50), depth)) == list(range(50))
        got = []
        with pytest.raises(ValueError, match="item 7"):
            for i in prefetched(numbers(50, fail_at=7), depth):
                got.append(i)
        assert got == list(range(7))
    closed = []

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.append(threading.current_thread().name)

    stream = prefetched(endless(), 2)
    assert [next(stream) for _ in range(5)] == [0, 1, 2, 3, 4]
    stream.close()  # the consumer stops early: the producer stops and closes the iterator, on its own thread
    assert closed == ["emofuse-prefetch"]
    assert not any(t.name == "emofuse-prefetch" for t in threading.enumerate())


def test_analyse_video_is_the_same_with_and_without_prefetching(tmp_path, monkeypatch):
    from test_video_seek import _moving_frames, _write

    from emofuse.faces import pipeline

    clip = _write(tmp_path / "clip.mp4", _moving_frames(43), options={"g": "10", "bf": "0"})
    runs = []
    for depth in (0, 2):
        monkeypatch.setattr(pipeline, "PREFETCH_FRAMES", depth)
        runs.append(pipeline.analyse_video(clip, "4fps", "haar", "fer_cnn"))
    a, b = runs
    assert np.array_equal(a.times, b.times) and np.array_equal(a.crops, b.crops)
    assert np.array_equal(a.embeddings, b.embeddings, equal_nan=True)
