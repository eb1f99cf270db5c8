"""The dock's *Images* section (the image list of a project of many images), the dialog that
maps imported label values to classes, and the validation Dice curves on the loss plot.

Thin Qt over :class:`~segstudio._qt.controller.SegController`: slots forward to it, and the
list redraws from its ``images`` part when ``images_changed`` fires.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtGui import QFont
from qtpy.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QPushButton,
    QRadioButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from segstudio._qt.image import layer_meta
from segstudio._qt.images import LabelsToImport
from segstudio.core.io import SUPPORTED_EXTENSIONS
from segstudio.core.label_import import FOREGROUND, INSTANCE_SCHEMES, WITH_BOUNDARY, default_mapping
from segstudio.core.trainer import HELD_OUT

COL_NAME, COL_STATE, COL_PAINTED, COL_VAL, COL_REVIEWED = range(5)
#: Rows the image list shows before it scrolls.
VISIBLE_ROWS = 6
#: Label images with more distinct values than this are imported as instance masks only.
MAX_MAPPED_VALUES = 64
#: The dialog's choice that maps values to classes one by one.
MAP_VALUES = "values"
_FILTER = "Images (" + " ".join(f"*{e}" for e in SUPPORTED_EXTENSIONS) + ");;All files (*)"


def _count(n: int) -> str:
    return f"{n:,}".replace(",", "\u2009")


class ImageListSection(QGroupBox):
    """*Images*: the session's images with their state, painted pixels and validation flag;
    add files, a folder or open layers, remove, import labels, *Predict all*, *Next unreviewed*."""

    def __init__(self, controller: Any, viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__("Images", parent)
        self.controller = controller
        self.viewer = viewer
        self._updating = False
        self._shown: list[Any] = []  # what each row shows (redrawn when it changes)
        #: Asks how to map imported label values (the dialog; tests answer directly):
        #: ``(mapping, None)``, ``(None, instance scheme)`` or ``None`` (cancelled).
        self.ask_mapping = self._ask_mapping
        col = QVBoxLayout(self)
        self.table = QTableWidget(0, 5)
        self.table.setHorizontalHeaderLabels(["Image", "State", "Painted", "Val.", "Rev."])
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(COL_NAME, QHeaderView.ResizeMode.Stretch)
        for c in (COL_STATE, COL_PAINTED, COL_VAL, COL_REVIEWED):
            header.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setToolTip("Click an image to show it with its paintings and prediction. Val.: its strokes "
                              "are for validation (not trained on; Dice on the loss plot). Rev.: its prediction "
                              "was checked.")
        col.addWidget(self.table)
        row = QHBoxLayout()
        self.add_btn = QPushButton("Add…")
        self.add_btn.setToolTip("Add image files, a folder of images, or open napari image layers")
        self.add_menu = QMenu(self.add_btn)
        self.add_btn.setMenu(self.add_menu)
        self.remove_btn = QPushButton("Remove")
        self.remove_btn.setToolTip("Remove the selected image from the list (its file stays where it is)")
        self.import_btn = QPushButton("Import labels…")
        self.import_btn.setToolTip("Import a label image (a file or a Labels layer) as paintings of the image on "
                                   "screen: strokes, dense masks or instance masks")
        self.import_menu = QMenu(self.import_btn)
        self.import_btn.setMenu(self.import_menu)
        for b in (self.add_btn, self.remove_btn, self.import_btn):
            row.addWidget(b)
        row.addStretch(1)
        col.addLayout(row)
        row = QHBoxLayout()
        self.predict_all_btn = QPushButton("Predict all")
        self.predict_all_btn.setToolTip("Predict every image with the newest weights and write NAME_labels files "
                                        "(into the project's predictions/ folder, or a folder you choose)")
        self.next_btn = QPushButton("Next unreviewed")
        self.next_btn.setToolTip("Mark the image on screen reviewed and show the prediction the model is least "
                                 "sure about (highest mean entropy)")
        self.regions_btn = QPushButton("Val. regions")
        self.regions_btn.setToolTip("Draw rectangles on the image on screen: its strokes inside them are kept for "
                                    "validation (not trained on; Dice per class on the loss plot)")
        row.addWidget(self.predict_all_btn)
        row.addWidget(self.next_btn)
        row.addWidget(self.regions_btn)
        row.addStretch(1)
        col.addLayout(row)

        c = controller
        c.images_changed.connect(self.refresh)
        c.labels_ready.connect(self._on_labels_ready)
        c.training_state_changed.connect(lambda _: self.refresh())
        self.table.currentCellChanged.connect(self._on_current)
        self.table.itemChanged.connect(self._on_item_changed)
        self.add_menu.aboutToShow.connect(self._fill_add_menu)
        self.import_menu.aboutToShow.connect(self._fill_import_menu)
        self.remove_btn.clicked.connect(self._on_remove)
        self.predict_all_btn.clicked.connect(self._on_predict_all)
        self.next_btn.clicked.connect(c.next_unreviewed)
        self.regions_btn.clicked.connect(c.edit_regions)
        self.refresh()

    # ------------------------------------------------------------------ the list
    def refresh(self) -> None:
        """Redraw the list from the controller's images."""
        images = self.controller.images
        names = [c.name for c in self.controller.classes]
        self._updating = True
        try:
            t = self.table
            if t.rowCount() != len(images.entries):
                t.setRowCount(len(images.entries))
                self._shown = [None] * len(images.entries)
            for r, e in enumerate(images.entries):
                # Only rows whose content changed are redrawn: a project has hundreds of images.
                shown = (e.name, e.name == images.current, e.state, e.painted, e.predicted_by, e.uncertainty,
                         e.labels, e.validation, e.regions, e.reviewed, tuple(names))
                if self._shown[r] == shown:
                    continue
                self._shown[r] = shown
                name = QTableWidgetItem(e.name)
                font = QFont(name.font())
                font.setBold(e.name == images.current)
                name.setFont(font)
                name.setToolTip(str(e.source.path) if e.source.path is not None else "no file (a layer)")
                t.setItem(r, COL_NAME, name)
                state = QTableWidgetItem(e.state)
                tip = []
                if e.predicted_by:
                    tip.append(f"predicted by {e.predicted_by}")
                if e.uncertainty is not None:
                    tip.append(f"uncertainty {e.uncertainty:.3f} (mean entropy: 0 sure, 1 undecided)")
                if e.labels is not None:
                    tip.append(f"labels: {e.labels}")
                state.setToolTip("\n".join(tip) or e.state)
                t.setItem(r, COL_STATE, state)
                painted = QTableWidgetItem(_count(sum(e.painted)))
                painted.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                painted.setToolTip(" · ".join(f"{n} {_count(v)}" for n, v in zip(names, e.painted)) or "not painted")
                t.setItem(r, COL_PAINTED, painted)
                for col, on, enabled in ((COL_VAL, e.validation, True),
                                         (COL_REVIEWED, e.reviewed, bool(e.predicted_by))):
                    box = QTableWidgetItem("")
                    flags = Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsUserCheckable
                    box.setFlags(flags | Qt.ItemFlag.ItemIsEnabled if enabled else flags)
                    partly = col == COL_VAL and not on and bool(e.regions)  # validation regions only
                    box.setCheckState(Qt.CheckState.Checked if on else
                                      Qt.CheckState.PartiallyChecked if partly else Qt.CheckState.Unchecked)
                    if partly:
                        box.setToolTip(f"{len(e.regions)} validation region{'s' if len(e.regions) != 1 else ''}")
                    t.setItem(r, col, box)
                if e.name == images.current and t.currentRow() != r:
                    t.setCurrentCell(r, max(t.currentColumn(), 0))
            rows = min(max(len(images.entries), 1), VISIBLE_ROWS)
            header = max(t.horizontalHeader().sizeHint().height(), t.horizontalHeader().height())
            t.setFixedHeight(header + rows * t.verticalHeader().defaultSectionSize() + 2 * t.frameWidth() + 2)
        finally:
            self._updating = False
        c = self.controller
        self.remove_btn.setEnabled(len(images.entries) > 1)
        self.next_btn.setEnabled(any(e.predicted_by for e in images.entries))
        self.predict_all_btn.setEnabled(bool(images.entries) and c.config is not None)

    def _name_at(self, row: int) -> str | None:
        item = self.table.item(row, COL_NAME)
        return None if item is None else item.text()

    def _on_current(self, row: int, *_: Any) -> None:
        if not self._updating and row >= 0 and (name := self._name_at(row)) is not None:
            self.controller.select_image(name)

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if self._updating or (name := self._name_at(item.row())) is None:
            return
        checked = item.checkState() == Qt.CheckState.Checked
        if item.column() == COL_VAL:
            self.controller.set_validation(name, checked)
        elif item.column() == COL_REVIEWED:
            self.controller.set_reviewed(name, checked)
        else:
            return
        self._shown[item.row()] = None  # what the click showed is redrawn from the state
        self.refresh()

    def _on_remove(self) -> None:
        name = self._name_at(self.table.currentRow())
        if name is not None:
            self.controller.remove_image(name)

    # ------------------------------------------------------------------ adding
    def _fill_add_menu(self) -> None:
        self.add_menu.clear()
        self.add_menu.addAction("Image files…").triggered.connect(self._on_add_files)
        self.add_menu.addAction("A folder of images…").triggered.connect(self._on_add_folder)
        c = self.controller
        layers = [lyr for lyr in self.viewer.layers if lyr.__class__.__name__ == "Image"
                  and lyr is not c.image_layer and layer_meta(lyr).get("role") is None]
        if layers:
            self.add_menu.addSeparator()
            self.add_menu.addAction("All open image layers").triggered.connect(lambda: c.add_layers(layers))
            for lyr in layers:
                self.add_menu.addAction(f"layer '{lyr.name}'").triggered.connect(
                    lambda _=False, lyr=lyr: c.add_layers([lyr]))

    def _on_add_files(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Add images", "", _FILTER)
        if paths:
            self.controller.add_images(paths)

    def _on_add_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add every image of a folder")
        if folder:
            self.controller.add_folder(folder)

    # ------------------------------------------------------------------ labels
    def _fill_import_menu(self) -> None:
        self.import_menu.clear()
        c = self.controller
        self.import_menu.addAction("A label file…").triggered.connect(self._on_import_file)
        own = {id(lyr) for lyr in c.paint_layers + c.prediction_layers}
        for lyr in self.viewer.layers:
            if lyr.__class__.__name__ == "Labels" and id(lyr) not in own:
                self.import_menu.addAction(f"layer '{lyr.name}'").triggered.connect(
                    lambda _=False, lyr=lyr: c.read_labels_to_import(lyr))

    def _on_import_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import labels", "", _FILTER)
        if path:
            self.controller.read_labels_to_import(path)

    def _on_labels_ready(self, ready: LabelsToImport) -> None:
        choice = self.ask_mapping(ready)
        if choice is not None:
            self.controller.import_labels(ready, *choice)

    def _ask_mapping(self, ready: LabelsToImport) -> tuple[dict[int, int | None] | None, str | None] | None:
        """The mapping dialog; ``None`` when cancelled."""
        dialog = LabelMappingDialog(ready, [c.name for c in self.controller.classes], self)
        return dialog.choice() if dialog.exec() == QDialog.DialogCode.Accepted else None

    def _on_predict_all(self) -> None:
        c = self.controller
        out = None
        if c.project_dir is None:
            out = QFileDialog.getExistingDirectory(self, "Folder to write the predictions to")
            if not out:
                return
        c.predict_all(out)


class LabelMappingDialog(QDialog):
    """Map the values of a label image to classes (or ignore them), or take an instance mask
    as foreground/background or foreground/boundary/background."""

    def __init__(self, ready: LabelsToImport, class_names: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Import labels: {ready.what}")
        self.ready = ready
        col = QVBoxLayout(self)
        values = [int(v) for v in ready.values]
        looks = " — this looks like an instance mask (one value per object)" if ready.instances else ""
        col.addWidget(QLabel(f"{len(values)} distinct values{looks}"))
        self.choices = QButtonGroup(self)
        self.radios: dict[str, QRadioButton] = {}
        mappable = len(values) <= MAX_MAPPED_VALUES
        options = [(MAP_VALUES, "Map each value to a class")] if mappable else []
        options += [(FOREGROUND, "Objects as foreground, 0 as background"),
                    (WITH_BOUNDARY, "Objects as foreground, their edges as boundary, 0 as background")]
        for key, text in options:
            radio = QRadioButton(text)
            self.radios[key] = radio
            self.choices.addButton(radio)
            col.addWidget(radio)
        first = INSTANCE_SCHEMES[0] if ready.instances or not mappable else MAP_VALUES
        self.radios[first].setChecked(True)
        self.table = QTableWidget(len(values) if mappable else 0, 2)
        self.table.setHorizontalHeaderLabels(["Value", "Class"])
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.combos: dict[int, QComboBox] = {}
        if mappable:
            default = default_mapping(np.asarray(values), len(class_names))
            for r, v in enumerate(values):
                self.table.setItem(r, 0, QTableWidgetItem(str(v)))
                combo = QComboBox()
                combo.addItem("ignore (not painted)", None)
                for k, n in enumerate(class_names, start=1):
                    combo.addItem(f"{k} {n}", k)
                combo.setCurrentIndex(max(combo.findData(default[v]), 0))
                self.table.setCellWidget(r, 1, combo)
                self.combos[v] = combo
        col.addWidget(self.table)
        self.note = QLabel("Your strokes are kept; the labels fill the unpainted pixels.")
        self.note.setWordWrap(True)
        col.addWidget(self.note)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        col.addWidget(buttons)
        self.choices.buttonToggled.connect(lambda *_: self.table.setEnabled(self.radios.get(MAP_VALUES) is not None
                                                                          and self.radios[MAP_VALUES].isChecked()))
        self.table.setEnabled(first == MAP_VALUES)

    def choice(self) -> tuple[dict[int, int | None] | None, str | None]:
        """``(mapping, None)`` or ``(None, instance scheme)``."""
        for key, radio in self.radios.items():
            if radio.isChecked() and key != MAP_VALUES:
                return None, key
        return {v: combo.currentData() for v, combo in self.combos.items()}, None


class ValidationCurves:
    """Dice per class on the validation strokes, drawn on the loss plot (dashed, the class
    colour) while training reports it."""

    def __init__(self, plot: Any, controller: Any) -> None:
        import pyqtgraph as pg

        self._pg = pg
        self.plot = plot
        self.controller = controller
        self.curves: list[Any] = []
        controller.validation.connect(self.redraw)
        controller.training_state_changed.connect(lambda _: self.redraw())

    def redraw(self, *_: Any) -> None:
        """Draw the validation Dice of the current run (none: no curves)."""
        vals = [v for v in self.controller.training.validations if v.kind == HELD_OUT]
        colors = self.controller.choices.classes
        k = len(vals[0].dice) if vals else 0
        while len(self.curves) > k:
            self.plot.removeItem(self.curves.pop())
        for i in range(k):
            xs = [v.iteration for v in vals if i < len(v.dice) and not math.isnan(v.dice[i])]
            ys = [v.dice[i] for v in vals if i < len(v.dice) and not math.isnan(v.dice[i])]
            if i >= len(self.curves):
                color = colors[i].color if i < len(colors) else "#ffffff"
                pen = self._pg.mkPen(color, width=2, style=Qt.PenStyle.DashLine)
                self.curves.append(self.plot.plot([], [], pen=pen, name=f"val Dice {i + 1}"))
            self.curves[i].setData(np.asarray(xs, float), np.asarray(ys, float))
