"""A deployed function's environment, built from the shared contract.

The service reads exactly the variables of `shared.contract.PipelineSettings` (the migrator
those of `MigratorSettings`); this module refuses to build an environment that misses one or
invents another, and wraps every variable the contract marks as secret in
`pulumi.Output.secret`, so no credential is ever plain in the state or in a stack output.
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
from pydantic_settings import BaseSettings

from shared.contract import PipelineSettings, env_var_names, secret_env_var_names


class EnvironmentMismatch(ValueError):
    pass


def function_environment(
    values: Mapping[str, pulumi.Input[str]], model: type[BaseSettings] = PipelineSettings
) -> dict[str, pulumi.Output[str]]:
    expected = set(env_var_names(model))
    missing = sorted(expected - set(values))
    extra = sorted(set(values) - expected)
    if missing or extra:
        raise EnvironmentMismatch(
            "function environment differs from shared.contract: "
            + "; ".join(
                part
                for part in (
                    f"missing {', '.join(missing)}" if missing else "",
                    f"unknown {', '.join(extra)}" if extra else "",
                )
                if part
            )
        )
    secret = secret_env_var_names(model)
    return {
        name: pulumi.Output.secret(values[name])
        if name in secret
        else pulumi.Output.from_input(values[name])
        for name in env_var_names(model)
    }
