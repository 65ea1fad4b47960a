import subprocess
import sys
import textwrap

HEAVY = ("torch", "torchvision", "timm", "hydra", "omegaconf", "vidpose.models")


def run_python(code: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", textwrap.dedent(code)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_import_pulls_in_no_heavy_module():
    result = run_python(
        f"""
        import sys
        import vidpose.heatmaps as hm
        from vidpose.registry import TARGETS
        assert set(TARGETS.names()) >= {{"gaussian", "motion_aware"}}
        heavy = {HEAVY!r}
        loaded = sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in heavy))
        print(loaded)
        assert not loaded, loaded
        assert all(hasattr(hm, name) for name in hm.__all__)
        """
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_numpy_paths_work_without_torch():
    # torch made unimportable: the numpy reference, decoding and flip merge still work
    result = run_python(
        """
        import sys
        sys.modules["torch"] = None
        import numpy as np
        import vidpose.heatmaps as hm
        geo = hm.Geometry((256, 192), 4, "udp")
        xy = np.array([[60.0, 70.0], [100.0, 150.0]])
        maps, weight = hm.gaussian_np(xy, np.ones(2), geo, 2.0)
        clip = np.stack([xy - 8, xy, xy + 8])
        targets = hm.motion_aware_np(clip, np.ones((3, 2)), geo, key=1)
        decoded, scores = hm.decode(maps[None], geo)
        assert np.abs(decoded[0] - xy).max() < 0.05
        merged = hm.merge_flip(maps[None], hm.flip_back(maps[None], [], geo))
        assert merged.shape == (1, 2, 64, 48) and targets["motion_prev"].shape == (2, 64, 48)
        try:
            hm.GaussianTarget(geo)(clip[None], np.ones((1, 3, 2)), np.zeros((1, 3), bool), 1)
        except ImportError:
            print("torch path needs torch")
        """
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "torch path needs torch" in result.stdout
