"""The *Objects* section of the dock: thin Qt controls over the objects part.

A collapsible section: live objects on or off, which classes are objects, the minimum size,
splitting and border objects; the object table (click a row to go to the object); saving the
objects and the table. Slots only forward to the controller and its objects part.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from qtpy.QtCore import QAbstractTableModel, QModelIndex, Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)
from superqt import QCollapsible

from segstudio._qt.objects import FOLLOW_MAX_VOXELS, ObjectsResult, table_of
from segstudio.core.annotations import EXCLUSIVE
from segstudio.core.batch import output_path
from segstudio.core.errors import UserInputError

#: Height of the object table (px).
TABLE_HEIGHT = 200
#: Rows the table measures to size its columns (besides the visible ones): Qt's default, 1000
#: rows, costs a large table a tenth of a second of GUI thread at every update.
TABLE_MEASURED_ROWS = 50
#: Largest minimum size the spin box offers (physical units).
MAX_MIN_SIZE = 1e9
#: Objects of an image that was not read from a file are saved as TIFF.
DEFAULT_SUFFIX = ".tif"

Column = tuple[str, Callable[[int], str], np.ndarray]


class ObjectTableModel(QAbstractTableModel):
    """The object table of :class:`~segstudio._qt.objects.ObjectsResult` s for a view: image
    (when there are several), id, class, area or volume, centroid, mean intensity per channel,
    bounding box. Sorted with numpy (a click on a header), so thousands of rows stay quick."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._columns: list[Column] = []
        self._ids = np.zeros(0, np.int64)
        self._order = np.zeros(0, np.int64)
        self._sort: tuple[int, Qt.SortOrder] | None = None

    def set_results(self, results: Sequence[ObjectsResult]) -> None:
        """Show the tables of ``results`` (one per image)."""
        self.beginResetModel()
        table = table_of(results) if results else {}
        self._columns = _columns(table, several=len(results) > 1)
        self._ids = np.asarray(table.get("id", np.zeros(0, np.int64)), dtype=np.int64)
        self._order = np.arange(len(self._ids))
        if self._sort is not None and self._sort[0] < len(self._columns):
            self._order = self._sorted(*self._sort)
        self.endResetModel()

    def object_id(self, row: int) -> int:
        """The object id shown in ``row``."""
        return int(self._ids[self._order[row]])

    def row_of(self, object_id: int) -> int | None:
        """The row that shows object ``object_id`` (``None``: none)."""
        rows = np.flatnonzero(self._ids[self._order] == object_id)
        return int(rows[0]) if len(rows) else None

    def headers(self) -> list[str]:
        """The column headers."""
        return [c[0] for c in self._columns]

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802, B008 - Qt API
        return 0 if parent.isValid() else len(self._ids)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802, B008 - Qt API
        return 0 if parent.isValid() else len(self._columns)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self._columns[index.column()][1](int(self._order[index.row()]))
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802 - Qt API
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self._columns[section][0]
        return None

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        if not 0 <= column < len(self._columns):
            return
        self._sort = (column, order)
        self.layoutAboutToBeChanged.emit()
        new = self._sorted(column, order)
        row_of = np.empty_like(new)
        row_of[new] = np.arange(len(new))
        kept = self.persistentIndexList()  # the selection: it stays on its objects
        self.changePersistentIndexList(kept, [self.index(int(row_of[self._order[i.row()]]), i.column())
                                              for i in kept])
        self._order = new
        self.layoutChanged.emit()

    def _sorted(self, column: int, order: Qt.SortOrder) -> np.ndarray:
        order_ = np.argsort(self._columns[column][2], kind="stable")
        return order_[::-1] if order == Qt.SortOrder.DescendingOrder else order_


def _columns(table: dict[str, np.ndarray], several: bool) -> list[Column]:
    """The columns a view shows of a merged object table: header, text of row i, sort key."""
    if "id" not in table:
        return []
    axes = [a for a in "zyx" if f"centroid_{a}" in table]
    cols: list[Column] = []
    if several:
        cols.append(("image", lambda i: str(table["image"][i]), table["image"].astype(str)))
    cols.append(("id", lambda i: str(table["id"][i]), table["id"]))
    if "class" in table:
        names = table.get("class_name", table["class"])
        cols.append(("class", lambda i: str(names[i]), table["class"]))
    size = "area" if "area" in table else "volume"
    cols.append((size, lambda i: f"{table[size][i]:.4g}", table[size]))
    centroid = np.stack([table[f"centroid_{a}"] for a in axes], axis=1)
    cols.append((f"centroid ({','.join(axes)})", lambda i: ", ".join(f"{v:.1f}" for v in centroid[i]),
                 centroid[:, 0]))
    for key in [k for k in table if k.startswith("mean_intensity")]:
        header = "mean" + key[len("mean_intensity"):].replace("_c", " c")
        cols.append((header, lambda i, k=key: f"{table[k][i]:.4g}", table[key]))
    starts = np.stack([table[f"bbox_{a}_start"] for a in axes], axis=1)
    stops = np.stack([table[f"bbox_{a}_stop"] for a in axes], axis=1)
    cols.append(("box (px)", lambda i: ", ".join(f"{a}:{b}" for a, b in zip(starts[i], stops[i])), starts[:, 0]))
    return cols


class ClassTicks(QListWidget):
    """The classes as check boxes in rows that wrap, as high as its rows."""

    def __init__(self) -> None:
        super().__init__()
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(True)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setSpacing(2)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

    def fit_height(self) -> None:
        """As high as the rows the items wrap into at the present width."""
        self.doItemsLayout()
        bottom = max((self.visualItemRect(self.item(i)).bottom() for i in range(self.count())), default=0)
        self.setFixedHeight(bottom + 1 + self.spacing() + 2 * self.frameWidth())

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        if event.size().width() != event.oldSize().width():
            self.fit_height()


def objects_file_name(source: str | None, name: str) -> str:
    """The file name offered for the objects of an image: ``NAME_objects`` in the format of the
    image's ``source`` file (PNG for a lossy one; :func:`segstudio.core.batch.output_path`),
    else TIFF."""
    if source:
        return output_path("", source, True, kind="objects").name
    return f"{name}_objects{DEFAULT_SUFFIX}"


#: Tooltip of *at dim lines* (a line on what it does now follows).
DIM_LINES_TIP = ("Split touching objects along the image's dim lines (seeds at its brightest spots) instead of by "
                 "shape or a boundary class: for cells whose contacts are dimmer than their inside, such as rods "
                 "side by side. Not for textured objects such as nuclei")


class ObjectsSection(QCollapsible):
    """The dock's *Objects* section (collapsed at first; the title counts the objects)."""

    def __init__(self, controller: Any, parent: QWidget | None = None) -> None:
        super().__init__("Objects", parent, expandedIcon="▾", collapsedIcon="▸")
        self.controller = controller
        self.objects = controller.objects
        self._updating = False
        self._build()
        self._connect()
        self._on_image_changed()
        self._refresh_classes()
        self._on_mode_changed(controller.mode)

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        body = QWidget()
        col = QVBoxLayout(body)
        col.setContentsMargins(4, 0, 0, 4)
        row = QHBoxLayout()
        self.follow_check = QCheckBox("Live objects")
        self.follow_check.setToolTip(
            "Label the objects of every new prediction into the 'objects' layer (on by default for images "
            f"up to {FOLLOW_MAX_VOXELS / 1e6:.0f} Mpx; larger ones: Find objects)")
        self.find_btn = QPushButton("Find objects")
        self.find_btn.setToolTip("The objects of the whole image (predicts it first when needed)")
        row.addWidget(self.follow_check)
        row.addStretch(1)
        row.addWidget(self.find_btn)
        col.addLayout(row)
        col.addWidget(QLabel("Objects are"))
        self.class_list = ClassTicks()
        self.class_list.setToolTip("Tick the classes whose pixels are objects; a class named like 'boundary' "
                                   "splits touching objects unless it is ticked")
        col.addWidget(self.class_list)
        row = QHBoxLayout()
        self.size_label = QLabel("min area")
        self.min_size_spin = QDoubleSpinBox()
        self.min_size_spin.setRange(0.0, MAX_MIN_SIZE)
        self.min_size_spin.setDecimals(2)
        self.min_size_spin.setToolTip("Smaller objects are dropped: area (2D) or volume (3D) in the image's "
                                      "physical units (its pixel spacing, squared or cubed)")
        row.addWidget(self.size_label)
        row.addWidget(self.min_size_spin)
        row.addStretch(1)
        col.addLayout(row)
        row = QHBoxLayout()
        self.split_check = QCheckBox("split touching")
        self.split_check.setChecked(self.objects.choices.split)
        self.split_check.setToolTip("Split touching objects (seeded watershed); off: connected regions")
        self.border_check = QCheckBox("drop at border")
        self.border_check.setChecked(self.objects.choices.drop_border)
        self.border_check.setToolTip("Drop objects that touch the image border")
        self.dim_lines_check = QCheckBox("at dim lines")
        self.dim_lines_check.setChecked(self.objects.choices.at_dim_lines)
        self.dim_lines_check.setToolTip(DIM_LINES_TIP)
        row.addWidget(self.split_check)
        row.addWidget(self.dim_lines_check)
        row.addWidget(self.border_check)
        row.addStretch(1)
        col.addLayout(row)
        self.model = ObjectTableModel(self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setResizeContentsPrecision(TABLE_MEASURED_ROWS)
        self.table.setFixedHeight(TABLE_HEIGHT)
        self.table.setToolTip("Click an object to go to it; click a header to sort")
        col.addWidget(self.table)
        row = QHBoxLayout()
        self.save_objects_btn = QPushButton("Save objects…")
        self.save_objects_btn.setToolTip("Write the objects of the whole image (0 background, 1..N) in the "
                                         "image's format, with its spacing (and NIfTI affine)")
        self.save_table_btn = QPushButton("Save table…")
        self.save_table_btn.setToolTip("Write the object table of the whole image as CSV (image, id, class, "
                                       "area/volume, centroid, mean intensity per channel, bounding box)")
        row.addWidget(self.save_objects_btn)
        row.addWidget(self.save_table_btn)
        row.addStretch(1)
        col.addLayout(row)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.note.setVisible(False)
        col.addWidget(self.note)
        self.addWidget(body)

    def _connect(self) -> None:
        c, o = self.controller, self.objects
        o.changed.connect(self._on_objects)
        o.choices_changed.connect(self._show_choices)
        c.image_changed.connect(self._on_image_changed)
        c.classes_changed.connect(self._refresh_classes)
        c.mode_changed.connect(self._on_mode_changed)
        self.follow_check.toggled.connect(lambda v: self._set(follow=bool(v)))
        self.min_size_spin.valueChanged.connect(lambda v: self._set(min_size=float(v)))
        self.split_check.toggled.connect(lambda v: self._set(split=bool(v)))
        self.border_check.toggled.connect(lambda v: self._set(drop_border=bool(v)))
        self.dim_lines_check.toggled.connect(lambda v: self._set(at_dim_lines=bool(v)))
        self.class_list.itemChanged.connect(self._on_class_ticked)
        self.find_btn.clicked.connect(c.find_objects)
        self.save_objects_btn.clicked.connect(self._on_save_objects)
        self.save_table_btn.clicked.connect(self._on_save_table)
        self.table.selectionModel().currentRowChanged.connect(self._on_row)
        self.table.clicked.connect(self._on_row)  # the current row again: go to it again

    # ------------------------------------------------------------------ slots
    def _set(self, **changes: Any) -> None:
        if not self._updating:
            self.objects.set_choices(**changes)

    def _on_class_ticked(self, item: QListWidgetItem) -> None:
        if self._updating:
            return
        ticked = tuple(self.class_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.class_list.count())
                       if self.class_list.item(i).checkState() == Qt.CheckState.Checked)
        self._set(object_classes=ticked)

    def _on_row(self, current: QModelIndex, previous: QModelIndex | None = None) -> None:
        if current.isValid() and not self._updating:
            self.objects.locate(self.model.object_id(current.row()))

    def _on_objects(self) -> None:
        """New objects: the table keeps the selected object (when it is still there) and its
        scroll position, without going to the object again."""
        results = self.objects.tables()
        current = self.table.currentIndex()
        selected = self.model.object_id(current.row()) if current.isValid() else None
        scrolled = self.table.verticalScrollBar().value()
        self._updating = True
        try:
            self.model.set_results(results)
            row = None if selected is None else self.model.row_of(selected)
            if row is not None:
                self.table.selectRow(row)
            self.table.verticalScrollBar().setValue(scrolled)
        finally:
            self._updating = False
        n = sum(r.n for r in results)
        self.setText(f"Objects ({n})" if results else "Objects")

    def _show_choices(self) -> None:
        choices = self.objects.choices
        self._updating = True
        try:
            self.follow_check.setChecked(self.objects.follows)
            self.min_size_spin.setValue(choices.min_size)
            self.split_check.setChecked(choices.split)
            self.dim_lines_check.setChecked(choices.at_dim_lines)
            self.border_check.setChecked(choices.drop_border)
        finally:
            self._updating = False
        self._show_dim_lines_use()

    def _show_dim_lines_use(self) -> None:
        """*at dim lines* is enabled while touching objects are split; its tooltip says what it
        replaces (the boundary class, when there is one)."""
        try:
            boundary = self.objects.options(self.controller.class_names()).boundary_class
        except UserInputError:  # no class is an object: nothing is split
            boundary = None
        split = self.objects.choices.split
        self.dim_lines_check.setEnabled(split)
        if not split:
            why = "\n\nNot used now: touching objects are not split"
        elif boundary is not None:
            why = ("\n\nTicked, it splits instead of the predicted boundary class (which then belongs to the "
                   "objects it surrounds)")
        else:
            why = ""
        self.dim_lines_check.setToolTip(DIM_LINES_TIP + why)

    def _on_image_changed(self) -> None:
        c = self.controller
        self.size_label.setText("min volume" if c.image_layer is not None and len(c.spatial_shape) == 3
                                else "min area")
        self._show_choices()

    def _refresh_classes(self) -> None:
        c = self.controller
        names = c.class_names()
        ticked = set(self.objects.object_classes(names))
        self._updating = True
        try:
            self.class_list.clear()
            for k, name in enumerate(names, start=1):
                item = QListWidgetItem(name)
                item.setData(Qt.ItemDataRole.UserRole, k)
                item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Checked if k in ticked else Qt.CheckState.Unchecked)
                self.class_list.addItem(item)
            self.class_list.fit_height()
        finally:
            self._updating = False
        self._show_dim_lines_use()

    def _on_mode_changed(self, mode: str) -> None:
        exclusive = mode == EXCLUSIVE
        self.content().setEnabled(exclusive)
        self.note.setText("" if exclusive else "Objects need exclusive mode (one class per pixel).")
        self.note.setVisible(not exclusive)

    def _on_save_objects(self) -> None:
        c = self.controller
        if c.image_layer is None:
            return
        dest, _ = QFileDialog.getSaveFileName(
            self, "Save the objects", objects_file_name(c.image.source, c.image_layer.name),
            "Images (*.tif *.tiff *.nii.gz *.nii *.png *.npy *.zarr);;All files (*)")
        if dest:
            c.save_objects(labels=dest)

    def _on_save_table(self) -> None:
        c = self.controller
        if c.image_layer is None:
            return
        dest, _ = QFileDialog.getSaveFileName(self, "Save the object table", f"{c.image_layer.name}_objects.csv",
                                              "CSV (*.csv);;All files (*)")
        if dest:
            c.save_objects(table=dest)
