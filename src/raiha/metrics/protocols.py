"""Scoring protocols: the field's evaluation conventions as named, documented objects.

Each codebase of the field scores harmonization differently; the numbers of one paper
cannot be compared with another's unless the convention is named. A
:class:`ScoringProtocol` states every choice:

- ``quantisation``: how a model output in [-1, 1] becomes pixel levels in [0, 255]:
  ``floor`` (``astype(uint8)`` after clipping, the authors' ``tensor2im``), ``round``, or
  ``float`` (clipped, no quantisation). Images read from files are uint8 already.
- ``mse``: ``whole`` (mean squared error over H, W, C) or ``masked`` (PCT-Net: the mean of
  ``mask * err`` over H, W, C, so background pixels count as zero error).
- ``psnr_peak``: ``255``, ``target_max`` (the real image's own maximum, iS2AM) or
  ``prediction_range`` (the prediction's max - min, Harmonizer's skimage call).
- ``mse_epsilon`` / ``min_mse``: added to, or the floor of, the MSE inside the PSNR's log.
- ``fmse``: ``hard`` (squared error summed over pixels with ``mask > 0.5``, / (3 * their
  count)), ``soft`` (``sum(mask * err) / (3 * sum(mask) + fmse_epsilon)``), or
  ``scaled`` (Harmonizer: ``mean((pred*m - gt*m)^2) * H*W / int(sum(m))``, i.e.
  ``sum(m^2 * err) / (3 * floor(sum(m)))``).
- ``background``: ``real_before`` (the composite is rebuilt as ``comp*m + real*(1-m)``
  before inference, HDNet / Raiha), ``real_after`` (the prediction's background is
  replaced by the real image's after inference, DiffHarmony ``--use_gt_bg``) or
  ``composite`` (nothing pasted: the composite's own background, iS2AM).
- ``resolution``: where the codebase scores: ``model`` (256 x 256) or ``original``.

The foreground ratio of an image (used for iS2AM's 0-5 / 5-15 / 15-100 % buckets) is the
share of its pixels with ``mask > 0.5`` at the scoring size, under every protocol.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

QUANTISATIONS = ("floor", "round", "float")
MSE_FORMULAS = ("whole", "masked")
PSNR_PEAKS = ("255", "target_max", "prediction_range")
FMSE_FORMULAS = ("hard", "soft", "scaled")
BACKGROUNDS = ("real_before", "real_after", "composite")
RESOLUTIONS = ("model", "original")


@dataclass(frozen=True)
class ScoringProtocol:
    """One codebase's scoring convention (see the module docstring for every field's values)."""

    name: str
    quantisation: str
    mse: str
    psnr_peak: str
    mse_epsilon: float
    min_mse: float
    fmse: str
    fmse_epsilon: float
    background: str
    resolution: str
    source: str

    def __post_init__(self) -> None:
        for field, allowed in (
            ("quantisation", QUANTISATIONS), ("mse", MSE_FORMULAS), ("psnr_peak", PSNR_PEAKS),
            ("fmse", FMSE_FORMULAS), ("background", BACKGROUNDS), ("resolution", RESOLUTIONS),
        ):  # fmt: skip
            if getattr(self, field) not in allowed:
                raise ValueError(f"protocol {self.name!r}: {field} {getattr(self, field)!r} is not one of {allowed}")

    def with_quantisation(self, quantisation: str) -> ScoringProtocol:
        """The same protocol with another quantisation (the paper protocol's ``quantize=round``)."""
        if quantisation not in QUANTISATIONS:
            raise ValueError(f"unknown quantize mode {quantisation!r}; choose one of {list(QUANTISATIONS)}")
        return ScoringProtocol(**{**asdict(self), "quantisation": quantisation})

    def describe(self) -> dict[str, Any]:
        """Every field, for ``metrics.json``."""
        return asdict(self)


PROTOCOL_REGISTRY: dict[str, ScoringProtocol] = {
    "paper": ScoringProtocol(
        name="paper", quantisation="floor", mse="whole", psnr_peak="255", mse_epsilon=0.0, min_mse=1e-10,
        fmse="hard", fmse_epsilon=0.0, background="real_before", resolution="model",
        source="HDNet / Raiha (skimage PSNR with data_range 255 on uint8 tensor2im images; "
        "fMSE = MSE * H*W / fg pixels, equal to 'hard' with the background pasted)",
    ),
    "is2am": ScoringProtocol(
        name="is2am", quantisation="float", mse="whole", psnr_peak="target_max", mse_epsilon=1e-6, min_mse=0.0,
        fmse="soft", fmse_epsilon=1e-6, background="composite", resolution="model",
        source="iS2AM / iDIH (float predictions, soft resized mask, PSNR peak = target max)",
    ),
    "pctnet": ScoringProtocol(
        name="pctnet", quantisation="float", mse="masked", psnr_peak="255", mse_epsilon=1e-6, min_mse=0.0,
        fmse="soft", fmse_epsilon=1e-6, background="composite", resolution="original",
        source="PCT-Net (iharm/inference/metrics.py: MSE = mean(mask * err), PSNR peak 255, "
        "soft-mask fMSE, full resolution)",
    ),
    "harmonizer": ScoringProtocol(
        name="harmonizer", quantisation="float", mse="whole", psnr_peak="prediction_range", mse_epsilon=0.0,
        min_mse=1e-10, fmse="scaled", fmse_epsilon=0.0, background="composite", resolution="original",
        source="Harmonizer (val_harmonizer.py: skimage PSNR with data_range = pred.max() - pred.min(), "
        "fMSE = MSE(pred*m, gt*m) * H*W / int(sum m), original size)",
    ),
}
PROTOCOLS: tuple[str, ...] = tuple(PROTOCOL_REGISTRY)


def get_protocol(name: str | ScoringProtocol) -> ScoringProtocol:
    """The protocol called ``name``; a ValueError lists the names when there is none."""
    if isinstance(name, ScoringProtocol):
        return name
    if name not in PROTOCOL_REGISTRY:
        raise ValueError(f"unknown evaluation protocol {name!r}; choose one of {list(PROTOCOLS)}")
    return PROTOCOL_REGISTRY[name]


def protocols_markdown() -> str:
    """A Markdown table of every protocol's conventions (for docs and notes)."""
    fields = ("quantisation", "mse", "psnr_peak", "fmse", "background", "resolution")
    lines = ["| protocol | " + " | ".join(fields) + " |", "|---" * (len(fields) + 1) + "|"]
    for protocol in PROTOCOL_REGISTRY.values():
        lines.append(f"| {protocol.name} | " + " | ".join(str(getattr(protocol, f)) for f in fields) + " |")
    return "\n".join(lines) + "\n"


__all__ = ["PROTOCOLS", "PROTOCOL_REGISTRY", "ScoringProtocol", "get_protocol", "protocols_markdown"]
