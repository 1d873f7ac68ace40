"""Kedro project settings for MIND-KD."""

from kedro.config import OmegaConfigLoader

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # an environment that overrides one nested key keeps the others (see docs/configuration.md)
    "merge_strategy": {"parameters": "soft", "globals": "soft"},
    "config_patterns": {
        "parameters": ["parameters*", "parameters*/**", "**/parameters*"],
        "mlflow": ["mlflow*", "mlflow*/**", "**/mlflow*"],
    },
}

# Teacher ensemble member slots per modality: defined with the tasks (mindkd.tasks.TEACHER_MEMBERS).
# The whole parameter tree checked before anything runs (mindkd.pipelines.params), then kedro-mlflow's
# hook, extended to log typed (pydantic) parameters flattened; see mindkd.hooks.
from mindkd.hooks import ParameterCheckHook, RunLockHook, TrackingHook  # noqa: E402
from mindkd.tasks import TEACHER_MEMBERS  # noqa: E402

HOOKS = (ParameterCheckHook(TEACHER_MEMBERS), RunLockHook(), TrackingHook())
DISABLE_HOOKS_FOR_PLUGINS = ("kedro_mlflow",)  # its distribution name (underscore)
