"""Writing shared network configs: the one writer, and what ``inspect-data --write-network`` asks of it.

The data tools measure an input contract on a data set; this module turns it (or
the contract of a backbone's pretrained weights) into
``shared_configs/networks/<net>.yaml``, checked against the network registry before
the file appears. It needs the registry (and so torch), so only the full
workstation writes network configs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from common.cli import check_plain_name
from common.contract import InputContract
from common.errors import UserError
from common.paths import display_path
from common.staging import staged
from networks.config import NETWORK_CONFIG_VERSION, ArchConfig, NetworkConfig, load_network_config, network_config_path
from networks.registry import build_network, check_network, registered

EXISTS_HINT = "pass --overwrite to replace it, or choose another name"
"""What to do when a network config to write exists already."""


@dataclass(frozen=True)
class NetworkRequest:
    """What ``--write-network`` asks for.

    Attributes:
        name: The config's name (or a ``.yaml`` path).
        arch: The registered architecture.
        params: Its parameters.
        overwrite: Replace an existing config.
        pretrained: A weights file in ``model/`` that training starts from, or None.
        size: ``(height, width)`` given on the command line, or None.
    """

    name: str
    arch: str
    params: dict[str, Any]
    overwrite: bool = False
    pretrained: str | None = None
    size: tuple[int, int] | None = None


def check_network_request(request: NetworkRequest) -> None:
    """Refuse a request that would fail, before the (possibly long) measurement of its contract.

    Raises:
        UserError: When the config exists (without ``overwrite``), or the architecture is
            unknown or does not take the parameters.
    """
    path = request_target(request.name)
    if path.exists() and not request.overwrite:
        raise UserError(f"{display_path(path)} already exists; {EXISTS_HINT}")
    placeholder = InputContract("L", 32, 32, "bilinear", (0.5,), (0.5,))  # the real one is measured later
    config = NetworkConfig(name=path.stem, arch=ArchConfig(request.arch, dict(request.params)), num_classes=2,
                           input=placeholder)
    check_network(config)
    try:
        build_network(config)  # the values too, as training will take them (`dropout=banana`, nested lists)
    except UserError:
        raise
    except Exception as exc:  # an architecture's own complaint about a value
        raise UserError(f"--params: {request.arch} cannot be built with {dict(request.params)} "
                        f"({type(exc).__name__}: {exc})") from None


def request_target(name: str) -> Path:
    """The file ``--write-network NAME`` writes: ``shared_configs/networks/<NAME>.yaml`` for a name, or the
    ``.yaml`` path given.

    Raises:
        UserError: For a name (not a ``.yaml`` path) that is not a plain file name: ``../../x`` would
            write outside ``shared_configs/networks/``.
    """
    if Path(name).suffix in (".yaml", ".yml"):
        return network_config_path(name)
    check_plain_name(name, "--write-network")
    return network_config_path(name)


def write_requested_network(request: NetworkRequest, measured: InputContract, num_classes: int, measured_on: str,
                            dataset: str) -> str:
    """Write the requested network config; returns what to tell the user.

    The input contract is the measured one, except for an architecture that knows the
    contract of its pretrained weights (a timm model: size, interpolation, mean and std
    of its pretrained config; ``request.size`` still chooses the size).

    Args:
        request: What was asked for.
        measured: The contract measured on the data set.
        num_classes: The data set's class count.
        measured_on: How the contract was measured, for the file's header comment.
        dataset: The data set it was measured on (named in the header and the next command).

    Raises:
        UserError: When the config exists (without ``overwrite``), or the architecture or
            its parameters are refused.
    """
    path = request_target(request.name)
    suggest = getattr(registered(request.arch), "suggested_contract", None)
    contract, source = measured, measured_on
    if suggest is not None:
        contract = suggest(request.params, measured.color_mode)
        if request.size:
            contract = replace(contract, height=request.size[0], width=request.size[1])
        source = f"input contract of the pretrained weights of {request.params}"
    config = write_network_config(path, request.arch, request.params, num_classes, contract,
                                  header=f"Written by `pipenv run inspect-data --dataset {dataset}`: {source}.",
                                  overwrite=request.overwrite,
                                  pretrained=request.pretrained)
    recipe = "finetune" if request.pretrained else "photos"
    return (f"wrote {display_path(path)} ({config.arch.name}, {config.num_classes} classes, "
            f"{config.input.color_mode} {config.input.height}x{config.input.width})\n"
            f"next: pipenv run train --config train/configs/{recipe}.yaml network={request.name} "
            f"data.dataset={dataset}")


def write_network_config(path: Path, arch: str, params: Mapping[str, Any], num_classes: int,
                         contract: InputContract, header: str = "", overwrite: bool = False,
                         pretrained: str | None = None) -> NetworkConfig:
    """Write a shared network config file, validated before it appears.

    The one writer of these files, whatever decides the contract: statistics
    measured on a data set (``inspect-data --write-network``), or a pretrained
    backbone's own input settings. The file is staged, loaded back with
    :func:`load_network_config`, checked against the network registry (name and
    parameters, without building the network), and only then published.

    Args:
        path: The YAML file, e.g. from :func:`network_config_path`; its stem is the config's name.
        arch: A registered architecture name.
        params: Its keyword arguments.
        num_classes: Number of output classes.
        contract: The input contract.
        header: A comment for the top of the file (one or more lines, without ``#``).
        overwrite: Replace an existing file; without it, an existing file is refused.
        pretrained: A weights file (in ``model/``) that training starts from, or None.

    Returns:
        The config as loaded back from the file.

    Raises:
        UserError: When the file exists (without ``overwrite``), or the values fail validation.
    """
    path = Path(path)
    data = {"version": NETWORK_CONFIG_VERSION, "arch": {"name": arch, "params": dict(params)},
            "num_classes": num_classes, "input": contract.to_dict(), **({"pretrained": pretrained} if pretrained else {})}
    check_network(NetworkConfig.from_dict({**data, "name": path.stem}, source=display_path(path)))
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    text = comment + yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
    with staged(path.parent, exists="replace" if overwrite else "refuse", files=[path.name],
                hint=EXISTS_HINT) as stage:
        (stage.path / path.name).write_text(text, encoding="utf-8")
        load_network_config(stage.path / path.name)
    return load_network_config(path)
