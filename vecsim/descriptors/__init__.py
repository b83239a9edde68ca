"""Frame descriptors: the robust embedding (by name) and the PDQ exact-match hash."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import DescriptorError
from .base import Descriptor, l2_normalise
from .efficientnet import EfficientNetGeM, EfficientNetGeMProjected

DEFAULT_DESCRIPTOR = EfficientNetGeMProjected.name
#: Built-in descriptors by name: the one place they are listed.
_BUILTIN = {EfficientNetGeMProjected.name: EfficientNetGeMProjected, EfficientNetGeM.name: EfficientNetGeM}


def _openclip(args: str, options: dict[str, Any]) -> Descriptor:
    arch, sep, pretrained = args.partition(":")
    if not sep or not arch or not pretrained:
        raise DescriptorError(f"openclip:{args}", "malformed; expected openclip:ARCH:PRETRAINED (a pretrained "
                              "tag or a checkpoint file), e.g. openclip:ViT-B-32:laion2b_s34b_b79k")
    from .openclip import OpenCLIPImage

    return OpenCLIPImage(arch, pretrained, **options)


def _sscd(args: str, options: dict[str, Any]) -> Descriptor:
    if not args:
        raise DescriptorError("sscd:", "malformed; expected sscd:PATH to a TorchScript file, "
                              "e.g. sscd:/models/sscd_disc_mixup.torchscript.pt")
    from .sscd import SSCDTorchScript

    return SSCDTorchScript(args, **options)


#: Descriptors named ``PREFIX:ARGS``: prefix -> (form shown in errors, factory).
_PREFIXED: dict[str, tuple[str, Callable[[str, dict[str, Any]], Descriptor]]] = {
    "openclip": ("openclip:ARCH:PRETRAINED", _openclip),
    "sscd": ("sscd:PATH", _sscd),
}


def descriptor_forms() -> list[str]:
    """Every accepted descriptor name or form, for help texts and errors."""
    return sorted(_BUILTIN) + [form for form, _ in _PREFIXED.values()]


def load_descriptor(spec: str | Descriptor | None = None, **options: Any) -> Descriptor:
    """A descriptor by name (``None`` = the default), or the given object if it implements
    :class:`Descriptor`. Names: a built-in (:func:`descriptor_forms` lists them), ``openclip:ARCH:PRETRAINED``
    (an OpenCLIP image tower; ``PRETRAINED`` is a tag or a local checkpoint file) or ``sscd:PATH``
    (an SSCD TorchScript file); see docs/models.md. ``options`` go to the descriptor's constructor
    (``threads``, ``calibration``, ...). Weights load lazily on the first ``embed``, except an SSCD
    file, which runs once at load to learn its dimension."""
    if spec is None:
        spec = DEFAULT_DESCRIPTOR
    if not isinstance(spec, str):
        if not isinstance(spec, Descriptor):
            raise DescriptorError(repr(spec), "does not implement the Descriptor protocol (name, version, dim, "
                                  "calibration, embed)")
        return spec
    if spec in _BUILTIN:
        return _BUILTIN[spec](**options)
    prefix, sep, args = spec.partition(":")
    if sep and prefix.strip().lower() in _PREFIXED:
        _, factory = _PREFIXED[prefix.strip().lower()]
        return factory(args.strip(), options)
    raise DescriptorError(repr(spec), f"unknown descriptor; use one of: {', '.join(descriptor_forms())}")


__all__ = ["DEFAULT_DESCRIPTOR", "Descriptor", "EfficientNetGeM", "descriptor_forms", "l2_normalise", "load_descriptor"]
