"""Sample-data contributions: synthetic nuclei in 2D and 3D with example paintings."""

from __future__ import annotations

from typing import Any

from segstudio.core.config import DEFAULT_COLORS
from segstudio.core.samples import Sample, sample_2d as core_sample_2d, sample_3d as core_sample_3d

LayerData = tuple[Any, dict[str, Any], str]


def _colormap(n: int) -> Any:
    from napari.utils.colormaps import DirectLabelColormap

    colors = {i + 1: DEFAULT_COLORS[i % len(DEFAULT_COLORS)] for i in range(n)}
    return DirectLabelColormap(color_dict={None: "transparent", 0: "transparent", **colors})


def sample_layers(sample: Sample) -> list[LayerData]:
    """Image, example paintings and (hidden) ground truth of a sample as layer-data tuples: the
    true classes and, when the sample has them, the true objects (one id per nucleus)."""
    scale = sample.spacing if sample.spacing is not None else (1.0,) * sample.image.ndim
    names = list(sample.class_names)
    image = (sample.image, {"name": sample.name, "scale": scale, "colormap": "gray"}, "image")
    paintings = (
        sample.paintings,
        {
            "name": "paintings",
            "scale": scale,
            "colormap": _colormap(len(names)),
            "metadata": {"segstudio": {"role": "paintings", "image": sample.name, "class_names": names}},
        },
        "labels",
    )
    truth = (
        sample.truth,
        {
            "name": f"{sample.name} truth",
            "scale": scale,
            "visible": False,
            "colormap": _colormap(len(names)),
            "metadata": {"segstudio": {"role": "truth", "image": sample.name, "class_names": names}},
        },
        "labels",
    )
    layers = [image, truth]
    if sample.instances is not None:
        layers.append((
            sample.instances,
            {
                "name": f"{sample.name} true objects",
                "scale": scale,
                "visible": False,
                "metadata": {"segstudio": {"role": "truth", "image": sample.name, "objects": True}},
            },
            "labels",
        ))
    return [*layers, paintings]


def sample_2d() -> list[LayerData]:
    """512 × 512 synthetic nuclei (background, nucleus, boundary) with example strokes."""
    return sample_layers(core_sample_2d())


def sample_3d() -> list[LayerData]:
    """32 × 96 × 96 synthetic nuclei volume (anisotropic spacing) with example strokes."""
    return sample_layers(core_sample_3d())
