"""Drawing, used by every floor (data preview, training previews, evaluation, predict, the report): masks over
photos (`overlay`), objects (`instances`), truth beside prediction (`compare`), titled sheets with legends
(`sheet`) and matplotlib charts (`charts`, imported on use)."""

from masksmith.draw.compare import COLUMNS, comparison_sheet, instance_row, semantic_row
from masksmith.draw.instances import draw_instances, render_instances
from masksmith.draw.overlay import colorize, colorize_layer, difference, overlay, palette_array, wrong_pixels
from masksmith.draw.sheet import Picture, legend, read_picture_info, sheet

__all__ = ["COLUMNS", "Picture", "colorize", "colorize_layer", "comparison_sheet", "difference", "draw_instances",
           "instance_row",
           "legend", "overlay", "palette_array", "read_picture_info", "render_instances", "semantic_row", "sheet",
           "wrong_pixels"]
