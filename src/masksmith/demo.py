"""`masksmith demo`: the main job on the built-in sample set, printing where everything went."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console


def run_demo(out: Path, console: Console) -> None:
    from masksmith.data import load_dataset
    from masksmith.data.convert import convert
    from masksmith.data.preview import write_preview
    from masksmith.data.sample import ensure_sample_dataset
    from masksmith.data.stats import dataset_stats

    out.mkdir(parents=True, exist_ok=True)
    source = ensure_sample_dataset()
    console.print(f"[bold]1. sample data set[/bold]: {source}")
    ds = load_dataset(source)
    stats = dataset_stats(ds)
    shares = ", ".join(f"{c.name} {100 * c.pixel_share:.1f} %" for c in [stats.background, *stats.classes])
    console.print(f"[bold]2. inspect[/bold]: format {ds.format}, {stats.images} images, {len(stats.classes)} classes, "
                  f"{stats.instances} instances; pixel share: {shares}")
    masks = convert(ds, "masks", out / "masks", kind="color")
    console.print(f"[bold]3. masks[/bold]: colour-coded mask PNGs in {masks}")
    preview = write_preview(ds, out / "preview.png", count=6)
    console.print(f"[bold]4. preview[/bold]: {preview}")
