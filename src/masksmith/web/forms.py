"""The request bodies, as pydantic models with the field names the pages send, and the page's wording: a
library message names settings in backticks (`size`); the page names its fields by their labels
(`web_message`), and a field that cannot be read is named by its label too (`validation_message`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

# the form fields and the settings behind them, as the pages label them
FIELD_LABELS = {"size": "Image size", "shrink": "Shrink factor", "batch_size": "Batch size",
                "time_budget": "Minutes", "minutes": "Minutes", "seconds": "Minutes", "epochs": "Epochs",
                "lr": "Learning rate", "val_fraction": "Validation share", "arch": "Model", "model": "Model",
                "task": "Task", "val": "Validation part", "test": "Test part", "seed": "Seed", "color": "Colour",
                "classes": "Part", "class": "Part", "dataset": "Data set", "more_minutes": "Train longer by",
                "more_epochs": "More epochs", "path": "Full path", "name": "Name", "flip": "Mirror images",
                "pretrained": "Start from pretrained weights", "format": "Format"}


def spell_field(name: str, value: str | None) -> str:
    label = FIELD_LABELS.get(name)
    if label is None:
        return f"the setting {name}" + (f"={value}" if value is not None else "")
    return f"“{label}”" + (f" {value}" if value is not None else "")


def web_message(text: str) -> str:
    """A library message worded for the page: settings named by their field labels."""
    from masksmith.core.errors import spell_settings

    return spell_settings(text, spell_field)


def validation_message(errors: list[dict[str, Any]]) -> str:
    """One sentence for a body pydantic could not read, naming the field by its label."""
    if not errors:
        return "the request could not be read."
    first = errors[0]
    kind, loc = first.get("type", ""), [str(x) for x in first.get("loc", ()) if x != "body"]
    if kind == "json_invalid":
        return "the request is not JSON."
    if not loc:
        return "the request has no JSON body." if kind == "missing" else "the request is not a JSON object."
    field = loc[0]
    label = FIELD_LABELS.get(field, field)
    given = first.get("input")
    if kind == "missing":
        return f"“{label}” is missing."
    if kind.startswith(("float", "int")):
        whole = " whole" if kind.startswith("int") else ""
        return f"“{label}” must be a{whole} number, not {given!r}."
    return f"“{label}”: {first.get('msg', 'not valid')} ({given!r:.40})."


class Form(BaseModel):
    """A page's form: unknown fields are ignored, and an empty field means "not given" (its default)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _blank_is_default(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (v is None or (isinstance(v, str) and not v.strip()))}
        return data


class ContinueForm(Form):
    """A model page's "continue training": minutes of fine-tuning on a data set (default: the model's own)."""

    dataset: int = 0
    minutes: float = Field(default=2.0, gt=0, le=24 * 60)


class TrainForm(Form):
    """The train page: data set, task, model, the budget (minutes, or epochs) and what the plan may choose."""

    dataset: int = 0
    task: str = "semantic"
    model: str | None = None
    minutes: float = 0
    seconds: float = 0
    epochs: int = 0
    size: int | None = None
    shrink: float | None = None
    batch_size: int | None = None
    lr: float | None = None
    val_fraction: float | None = None
    flip: bool = True
    pretrained: bool = True
    name: str | None = None

    def config(self, root: str | Path, colors: dict[str, Any]):
        """A checked TrainConfig, as `masksmith train` builds one (masksmith.service); what the form leaves
        empty is planned from the data set's fingerprint when training starts."""
        from masksmith import service
        from masksmith.core.errors import MasksmithError

        seconds = self.seconds or 60 * self.minutes
        if seconds <= 0 and self.epochs <= 0:
            raise MasksmithError("give a time budget (`time_budget`) or a number of `epochs`.")
        return service.training_config(
            root, task=self.task or "semantic", model=self.model, strict_data=False, class_colors=colors,
            time_budget=seconds if seconds > 0 else None, epochs=self.epochs if seconds <= 0 else None,
            size=self.size or None, shrink=self.shrink or None, batch_size=self.batch_size or None,
            lr=self.lr or None, val_fraction=self.val_fraction or None, flip=self.flip,
            encoder_weights=None if self.pretrained else "none")


class FolderForm(Form):
    path: str = ""
    name: str | None = None


class SplitForm(Form):
    val: float = 0.2
    test: float = 0.1
    seed: int = 0


class EvaluateForm(Form):
    dataset: int = 0


class ResumeForm(Form):
    """Resume as it was (nothing given), or train longer by `more_minutes` or `more_epochs`."""

    more_minutes: float = 0
    more_epochs: int = 0


class PartForm(Form):
    """An app on one part of a "try it" result (new wheels); recolouring adds the colour."""

    part: str = Field("", alias="class")


class RecolorForm(PartForm):
    color: str = ""
    grow: bool = True  # paint the car's unlabelled panels of the same paint too
