"""Hook implementations: only descriptors here, so loading the plugin is cheap."""

from __future__ import annotations

from collections.abc import Callable

from dpconv import FormatInfo, hookimpl


@hookimpl
def dpconv_register_formats(register: Callable[[FormatInfo], None]) -> None:
    register(
        FormatInfo(
            "n2p2",
            "dpconv_n2p2.inputdata",
            aliases=("runner", "n2p2/input.data"),
            reads="both",
            writes=True,
            globs=("input.data", "*.data.n2p2"),
            description="n2p2/RuNNer input.data (begin/lattice/atom/energy/end)",
        )
    )
