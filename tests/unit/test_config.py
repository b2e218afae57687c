"""The config object reads every setting, and Ray's variables for the settings Ray has."""

import pytest

from zray._config import RAY_ALIASES, Config


def _other_than(default) -> str:
    """An environment value that parses to something other than `default`."""
    if isinstance(default, bool):
        return "0" if default else "1"
    if isinstance(default, (int, float)):
        return str(default + 7)
    return default + "-set"


def test_each_ray_variable_sets_its_setting_and_zrays_own_variable_wins():
    defaults = Config()
    for name, ray_name in RAY_ALIASES.items():
        default = getattr(defaults, name)
        from_ray = Config.from_env({ray_name: _other_than(default)})
        assert getattr(from_ray, name) != default, ray_name
        # ZRAY_<NAME> set to the default's own value still wins over Ray's variable.
        as_default = "1" if default is True else "0" if default is False else str(default)
        both = Config.from_env({ray_name: _other_than(default), "ZRAY_" + name.upper(): as_default})
        if as_default:
            assert getattr(both, name) == default, ray_name


def test_the_cluster_token_comes_from_rays_variable_too():
    assert Config.from_env({"RAY_AUTH_TOKEN": "t0k"}).token == "t0k"
    assert Config.from_env({"RAY_AUTH_TOKEN": "t0k", "ZRAY_TOKEN": "mine"}).token == "mine"


def test_a_malformed_zray_variable_is_an_error_naming_it():
    with pytest.raises(ValueError, match="ZRAY_ROTATION_BACKUP_COUNT='five' is not a int"):
        Config.from_env({"ZRAY_ROTATION_BACKUP_COUNT": "five"})
