"""Which parameters a kernel differentiates with respect to (see docs/protocol.md, "The kernel")."""

from __future__ import annotations

from torch import nn

from ntknas.errors import NtknasError, UnknownNameError

PARAMETER_SETS = ("weights", "all")


def classifier_name(net: nn.Module) -> str | None:
    """Name of the final classifier layer: the module ``net.get_classifier()`` returns (timm's
    convention, which a network of one's own can follow to name its head), else a module called
    ``classifier``, else the last ``nn.Linear`` registered.

    The study excludes the classifier from the kernel; ntknas's own networks name it
    ``classifier``, and for custom networks the last ``nn.Linear`` registered is the usual head.
    """
    modules = dict(net.named_modules())
    named_head = _declared_classifier(net, modules)
    if named_head is not None:
        return named_head
    if isinstance(modules.get("classifier"), nn.Module):
        return "classifier"
    linear_names = [name for name, module in modules.items() if isinstance(module, nn.Linear)]
    return linear_names[-1] if linear_names else None


def _declared_classifier(net: nn.Module, modules: dict[str, nn.Module]) -> str | None:
    """The name of the submodule ``net.get_classifier()`` returns, if the network has that method
    and the head has parameters (timm returns ``nn.Identity`` for a network built without one)."""
    getter = getattr(net, "get_classifier", None)
    if not callable(getter):
        return None
    head = getter()
    if not isinstance(head, nn.Module) or not any(True for _ in head.parameters()):
        return None
    return next((name for name, module in modules.items() if module is head and name), None)


def select_parameters(
    net: nn.Module, params: str = "weights", classifier: str | None = None
) -> dict[str, nn.Parameter]:
    """The parameters θ_K of the kernel, by name, in registration order.

    ``"weights"``: every trainable parameter whose name contains ``weight``, excluding the
    classifier (the study's choice; BatchNorm affine weights count where they exist).
    ``"all"``: every trainable parameter.
    """
    if params not in PARAMETER_SETS:
        raise UnknownNameError(
            f"unknown parameter set {params!r}: use one of {', '.join(PARAMETER_SETS)}"
        )
    named = [(name, p) for name, p in net.named_parameters() if p.requires_grad]
    if params == "weights":
        head = classifier if classifier is not None else classifier_name(net)
        prefix = f"{head}." if head else None
        named = [
            (name, p)
            for name, p in named
            if "weight" in name and not (prefix and name.startswith(prefix))
        ]
    if not named:
        raise NtknasError(
            f"the network has no trainable parameters in the set {params!r}: "
            "use params='all' or check requires_grad"
        )
    return dict(named)
