"""The name older releases pickled a dependency's place under (``taskq.dependencies._dependency``,
in the argument bodies of journaled tasks that wait on others): it lives in
``taskq.protocol.deps``; this module only keeps that name loadable."""

from taskq.protocol.deps import _dependency

__all__ = ["_dependency"]
