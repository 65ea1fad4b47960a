import subprocess
import sys

import pytest

from vidpose.registry import Registry, RegistryError, load_plugins, to_plain


def make_registry():
    reg = Registry("things")

    @reg.register("gaussian")
    class Gaussian:
        def __init__(self, sigma: float = 2.0, geometry=None):
            self.sigma, self.geometry = sigma, geometry

    @reg.register("needs_arg")
    def needs_arg(width: int, depth: int = 1):
        return (width, depth)

    return reg, Gaussian


def test_build_injects_runtime_only_where_accepted():
    reg, Gaussian = make_registry()
    obj = reg.build({"name": "gaussian", "sigma": 3.0}, geometry="G", num_joints=17)
    assert isinstance(obj, Gaussian) and obj.sigma == 3.0 and obj.geometry == "G"
    assert reg.build("needs_arg", width=4) == (4, 1)


def test_duplicate_key_is_an_error():
    reg, _ = make_registry()
    with pytest.raises(RegistryError, match="already registered"):
        reg.register("gaussian")(lambda: None)


def test_unknown_name_names_closest_and_all_keys():
    reg, _ = make_registry()
    with pytest.raises(RegistryError) as err:
        reg.build({"name": "gausian"})
    msg = str(err.value)
    assert "did you mean 'gaussian'" in msg.lower() and "needs_arg" in msg and "things" in msg


def test_misspelled_argument_names_path_and_accepted():
    reg, _ = make_registry()
    with pytest.raises(RegistryError) as err:
        reg.build({"name": "gaussian", "sigam": 3.0}, path="target", geometry=None)
    msg = str(err.value)
    assert msg.startswith("target:") and "'sigam'" in msg and "'sigma'" in msg
    # runtime arguments are not offered as things the config could set
    assert "Accepted: sigma" in msg and "geometry" not in msg.split("Accepted:")[1]


def test_config_may_not_set_runtime_fact_and_missing_required_is_named():
    reg, _ = make_registry()
    with pytest.raises(RegistryError, match="set at run time"):
        reg.build({"name": "gaussian", "geometry": 1}, geometry=2)
    with pytest.raises(RegistryError, match="needs width"):
        reg.build({"name": "needs_arg"})
    with pytest.raises(RegistryError, match="missing 'name'"):
        reg.build({"sigma": 1})


def test_to_plain_converts_omegaconf():
    from omegaconf import OmegaConf

    node = OmegaConf.create({"name": "needs_arg", "width": 2, "depth": "${width}"})
    reg, _ = make_registry()
    assert reg.build(node) == (2, 2)
    assert to_plain(OmegaConf.create({"a": [1, {"b": 2}]})) == {"a": [1, {"b": 2}]}


def test_load_plugins_error_names_module():
    with pytest.raises(ImportError, match="no_such_vidpose_plugin"):
        load_plugins(["no_such_vidpose_plugin"])


def test_registry_module_is_torch_free():
    code = "import sys, vidpose.registry; assert 'torch' not in sys.modules and 'hydra' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
