"""The segstudio dock widget: thin Qt controls over :class:`SegController`.

Layout (one column, see DESIGN.md "The dock widget"): image and mode, the class table, the
training group (settings, buttons, progress, loss curve, live preview), the collapsible objects
section (:mod:`segstudio._qt.objects_section`) and the results group.
Slots only forward to the controller; nothing is computed here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from qtpy.QtCore import QEvent, Qt, QTimer
from qtpy.QtGui import QColor, QIcon, QPixmap
from qtpy.QtWidgets import (
    QAbstractItemView,
    QAbstractSpinBox,
    QButtonGroup,
    QCheckBox,
    QColorDialog,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QStyle,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from segstudio._qt.controller import SegController
from segstudio._qt.image import layer_meta
from segstudio._qt.objects import OBJECTS_ROLE
from segstudio._qt.objects_section import ObjectsSection
from segstudio._qt.image_list import ImageListSection, ValidationCurves
from segstudio._qt.settings import DEVICES, LENGTHS, PREVIEW_REGIONS
from segstudio.core.annotations import EXCLUSIVE, MULTILABEL
from segstudio.core.config import (
    LEVEL_SLICES_CHOICES,
    MAX_DOWNSAMPLE,
    MODEL_PRESETS,
    TEXTURES_CHOICES,
    WIDE_CONTEXT_CHOICES,
)
from segstudio.core.losses import LOSS_NAMES
from segstudio.core.project import KEEP_AUTOSAVE_DAYS, KEEP_AUTOSAVES
from segstudio.core.stroke_fit import unlearnt, unlearnt_message
from segstudio.core.weights import METHODS, tempered_note

#: Export formats offered by the *Export model…* file dialog, with their filter labels.
EXPORT_FORMAT_LABELS = (
    ("torchscript", "TorchScript"), ("onnx", "ONNX"), ("bioimageio", "bioimage.io model"), ("pt2", "torch.export"),
)

#: How often the progress text and loss curve are redrawn while training (ms). Each redraw
#: recomposes the whole window around napari's OpenGL canvas; under software OpenGL (remote
#: desktops, VMs, Xvfb) on 2 cores redrawing every 250 ms cost the trainer about a third of its
#: steps (benchmarks/RESULTS.md, "The app's training speed"), every 1000 ms still about a tenth
#: (RESULTS, "Channels-last on the CPU, and what the app's previews cost"): every 2 s, the
#: previews' own pace.
REDRAW_MS = 2000
#: Smoothing of the loss curve (exponential moving average factor).
LOSS_EMA = 0.05
EMA_WARMUP = 4.0
PLOT_HEIGHT = 130
#: Characters a combo box is wide enough for (longer items are elided).
COMBO_CHARS = 5
#: Least width of a spin box (px).
SPIN_MIN_PX = 84
SWATCH_PX = 14
COL_SWATCH, COL_NAME, COL_COUNT, COL_WEIGHT, COL_PIN, COL_LEARNT = range(6)
#: Colour of a class's *Learnt* figure while it is flagged (and of the note under the table).
WARN_COLOR = "#d9a03f"
LOSS_LABELS = {
    "ce": "CE", "focal": "focal", "gdl": "gen. Dice", "dice_ce": "Dice + CE",
    "bce": "BCE", "dice": "soft Dice", "dice_bce": "Dice + BCE",
}


#: The tooltip of *Downsample* (``TrainConfig.downsample``).
DOWNSAMPLE_TIP = (
    "For objects much larger than the network's reach (about 23 pixels across): the network "
    "works on the image shrunk this many times (the mean of each block of pixels; a volume "
    "in-plane, and along z only where z is finer than the shrunk pixels), and its predictions "
    "come back at full size in live previews, Predict and exports. You paint at full size as "
    "before. Pick the factor that makes your objects 25–40 pixels across. Measured on nuclei "
    "96–160 pixels across (three painting habits, two seeds): ×4 raised foreground Dice in 10 "
    "of 12 cases and instance F1 (objects found whole) in 9 (casual strokes: 0.37 → 0.98); on "
    "nuclei 50–80 pixels across ×2 was mixed (F1 better in 4, worse in 6). A training step "
    "takes about 1.1–1.3× (×2) and 2.2–2.6× (×4) as long on a CPU (your strokes are still "
    "learnt at full size); predicting the whole image is 6–14× faster. Too large a factor "
    "loses thin structures and small objects, and a boundary class thinner than a block "
    "(in 3-D with traced outlines, ×4 split fewer touching nuclei: instance F1 0.44 → 0.30, "
    "0.64 → 0.46, where casual strokes gained 0.75 → 1.00). off: the image as it is. After a "
    "change, the next Train starts a new model."
)


def _combo(items: Sequence[str], current: str, tip: str) -> QComboBox:
    """A combo box of ``items`` showing ``current``, with its tooltip."""
    box = QComboBox()
    box.addItems(list(items))
    box.setCurrentText(current)
    box.setToolTip(tip)
    return box


def _checkbox(text: str, checked: bool, tip: str) -> QCheckBox:
    """A check box with its state and tooltip."""
    box = QCheckBox(text)
    box.setChecked(checked)
    box.setToolTip(tip)
    return box


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None or not np.isfinite(seconds):
        return "–"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _swatch_icon(color: str) -> QIcon:
    pix = QPixmap(SWATCH_PX, SWATCH_PX)
    pix.fill(QColor(color))
    return QIcon(pix)


def _group_count(n: int) -> str:
    return f"{n:,}".replace(",", "\u2009")  # thin space as thousands separator


class SegStudioWidget(QWidget):
    """Dock widget: paint → train → preview → predict.

    Parameters
    ----------
    napari_viewer
        The viewer to work in (napari passes it to plugin widgets).
    """

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.controller = SegController(napari_viewer, parent=self)
        self._updating = False
        self._progress = None
        self._plotted = 0
        self._ema: list[float] = []
        self._build()
        self._connect()
        self._refresh_layer_combos()
        self._on_mode_changed(self.controller.mode)
        self._refresh_classes()
        self._on_state(self.controller.state)
        ctrl = self.controller
        self.destroyed.connect(lambda *_: ctrl.shutdown())

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        body = QWidget()
        scroll.setWidget(body)
        outer.addWidget(scroll)
        col = QVBoxLayout(body)
        col.setContentsMargins(6, 6, 6, 6)
        col.setSpacing(8)

        # -- image and mode
        data = QGroupBox("Image")
        form = QFormLayout(data)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.image_combo = QComboBox()
        self.image_combo.setToolTip("The image layer to segment")
        self.channel_spin = QSpinBox()
        self.channel_spin.setRange(-1, 0)
        self.channel_spin.setSpecialValueText("none")
        self.channel_spin.setToolTip("Axis of the image that holds channels (none: single channel)")
        row = QHBoxLayout()
        row.addWidget(self.image_combo, 1)
        row.addWidget(QLabel("channels"))
        row.addWidget(self.channel_spin)
        form.addRow("Image", row)
        self.mode_exclusive = QRadioButton("exclusive")
        self.mode_exclusive.setToolTip("Every pixel has exactly one class (softmax)")
        self.mode_multilabel = QRadioButton("multi-label")
        self.mode_multilabel.setToolTip(
            "A pixel may carry several classes (sigmoid); one paint layer per class, "
            "1 = present, 2 = absent"
        )
        self.mode_group = QButtonGroup(self)
        self.mode_group.addButton(self.mode_exclusive)
        self.mode_group.addButton(self.mode_multilabel)
        mode_row = QHBoxLayout()
        mode_row.addWidget(self.mode_exclusive)
        mode_row.addWidget(self.mode_multilabel)
        mode_row.addStretch(1)
        form.addRow("Mode", mode_row)
        col.addWidget(data)
        self.image_list = ImageListSection(self.controller, self.viewer)
        col.addWidget(self.image_list)

        # -- classes
        classes = QGroupBox("Classes")
        cl = QVBoxLayout(classes)
        self.class_table = QTableWidget(0, 6)
        self.class_table.setHorizontalHeaderLabels(["", "Class", "Painted px", "Weight", "Pin", "Learnt"])
        self.class_table.horizontalHeaderItem(COL_LEARNT).setToolTip(
            "While training: the share of this class's own strokes that the last training steps "
            "predict as this class (multi-label: present strokes as present and absent as absent, "
            "the lower of the two). Low after the first steps: not learnt yet; train longer, or "
            "paint more of it."
        )
        self.class_table.verticalHeader().setVisible(False)
        self.class_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.class_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.class_table.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked | QAbstractItemView.EditTrigger.EditKeyPressed
        )
        header = self.class_table.horizontalHeader()
        header.setSectionResizeMode(COL_SWATCH, QHeaderView.ResizeMode.Fixed)
        header.setSectionResizeMode(COL_NAME, QHeaderView.ResizeMode.Stretch)
        for c in (COL_COUNT, COL_WEIGHT, COL_PIN, COL_LEARNT):
            header.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        self.class_table.setColumnWidth(COL_SWATCH, SWATCH_PX + 12)
        self.class_table.setToolTip(
            "Click a class to paint it. Double-click the name to rename, the swatch to change "
            "the colour, the weight to pin it."
        )
        self.class_table.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.class_table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        cl.addWidget(self.class_table)
        row = QHBoxLayout()
        self.add_class_btn = QPushButton("+ class")
        self.add_class_btn.setToolTip("Add a class")
        self.remove_class_btn = QPushButton("− class")
        self.remove_class_btn.setToolTip("Remove the selected class (its strokes are erased)")
        self.method_combo = QComboBox()
        self.method_combo.addItems(list(METHODS))
        self.method_combo.setToolTip("How class weights are computed from the painted pixel counts")
        row.addWidget(self.add_class_btn)
        row.addWidget(self.remove_class_btn)
        row.addStretch(1)
        row.addWidget(QLabel("weights"))
        row.addWidget(self.method_combo)
        cl.addLayout(row)
        self.outlines_check = _checkbox(
            "fill outlines", self.controller.settings.infer_outlines,
            "A closed outline traced with one class around a stroke of another class also teaches "
            "its inside as that class, and a thin band just outside it as background where the "
            "image looks like your painted background (multi-label: per class, absent as the "
            "background). Your strokes are never changed. Takes effect at the next Train."
        )
        self.background_check = _checkbox(
            "background look-alikes", self.controller.settings.infer_background,
            "Where your background strokes and your other strokes differ clearly in brightness, "
            "unpainted patches as dark (or bright) as your background strokes, up to a fifth of the "
            "way towards your objects' brightness (not with textures on), are also learnt as "
            "background, next to objects too, where they join one of your background strokes or form "
            "a large region, and beside them the blurred rim of brighter objects, up to a sixth of "
            "the way from the background nearby to the object's brightness (not with textures on): "
            "no halo of object class around objects, and no dark grains inside a textured object. "
            "Corrections (background painted over a bright look-alike, objects "
            "painted into a dim part of an object) do not turn this off. With wide context (2D) or "
            "level slices (3D) on, brightness is read against the background nearby, so background "
            "as bright as your dim objects elsewhere is taken too. Nothing is inferred where "
            "brightness does not tell the classes apart. Multi-label: strokes absent in every class "
            "are the background, present in any the rest, and look-alikes are learnt absent in every "
            "class. The part of an object stroke that runs on past the object's edge onto such "
            "background (a quick stroke, an outline a pixel too wide) is left out of training, not "
            "relabelled. Your strokes are never changed. Takes effect at the next Train."
        )
        self.inferred_check = QCheckBox("show inferred")
        self.inferred_check.setToolTip(
            "Overlay what these rules infer from your strokes (what training learns besides them), "
            "and grey the parts of your strokes that training leaves out (layer 'not learnt')"
        )
        rules = QHBoxLayout()
        rules.addWidget(self.outlines_check)
        rules.addWidget(self.background_check)
        rules.addWidget(self.inferred_check)
        rules.addStretch(1)
        cl.addLayout(rules)
        self.weights_note = QLabel("")
        self.weights_note.setWordWrap(True)
        self.weights_note.setStyleSheet(f"color: {WARN_COLOR};")
        self.weights_note.setVisible(False)
        cl.addWidget(self.weights_note)
        self.learnt_note = QLabel("")
        self.learnt_note.setWordWrap(True)
        self.learnt_note.setStyleSheet(f"color: {WARN_COLOR};")
        self.learnt_note.setVisible(False)
        cl.addWidget(self.learnt_note)
        col.addWidget(classes)

        # -- training
        training = QGroupBox("Training")
        tl = QVBoxLayout(training)
        grid = QGridLayout()
        grid.setHorizontalSpacing(6)
        self.preset_combo = QComboBox()
        self.preset_combo.addItems(list(MODEL_PRESETS))
        self.preset_combo.setToolTip(
            "U-Net size: " + "; ".join(f"{k} {v}" for k, v in MODEL_PRESETS.items())
        )
        self.loss_combo = QComboBox()
        self.loss_combo.setToolTip("Loss function (depends on the mode)")
        self.device_combo = QComboBox()
        self.device_combo.addItems(list(DEVICES))
        self.device_combo.setToolTip("auto: CUDA, then MPS, then CPU")
        self.length_combo = QComboBox()
        self.length_combo.addItems(list(LENGTHS))
        self.length_combo.setToolTip("When training stops by itself")
        self.iter_spin = QSpinBox()
        self.iter_spin.setRange(1, 10_000_000)
        self.iter_spin.setSingleStep(100)
        self.iter_spin.setValue(self.controller.settings.iterations)
        self.iter_spin.setSuffix(" it")
        self.minutes_spin = QDoubleSpinBox()
        self.minutes_spin.setRange(0.1, 10_000)
        self.minutes_spin.setValue(self.controller.settings.minutes)
        self.minutes_spin.setSuffix(" min")
        self.minutes_spin.setVisible(False)
        pairs = (("Model", self.preset_combo), ("Loss", self.loss_combo), ("Device", self.device_combo),
                 ("Length", self.length_combo))
        for i, (label, w) in enumerate(pairs):
            grid.addWidget(QLabel(label), i // 2, 2 * (i % 2))
            grid.addWidget(w, i // 2, 2 * (i % 2) + 1)
        self.wide_combo = _combo(
            WIDE_CONTEXT_CHOICES, self.controller.settings.wide_context,
            "For 2D images whose background varies across the image more than your objects' "
            "contrast (uneven illumination, a glow): the network also sees the image smoothed over "
            "a wider neighbourhood (an extra σ 4 filter). Measured better on such images, worse on "
            "textures, on isolated bright objects and on volumes. auto: on when your background "
            "strokes vary in brightness more than your classes differ from them (a line under the "
            "class table says so); a run keeps the choice it started with. Part of the network: "
            "after a change, the next Train starts a new model.",
        )
        self.wide_label = QLabel("Wide context")
        grid.addWidget(self.wide_label, 2, 0)
        grid.addWidget(self.wide_combo, 2, 1)
        grid.addWidget(self.iter_spin, 2, 3)
        grid.addWidget(self.minutes_spin, 2, 3)
        self.textures_combo = _combo(
            TEXTURES_CHOICES, self.controller.settings.textures,
            "For classes that differ in texture more than in brightness (tissue: granular against "
            "fibrous regions): the network also sees, over a neighbourhood of about 8 pixels, the "
            "local mean, how much the image varies and whether its edges share one direction. "
            "Measured on textured images: foreground Dice +0.14 on average (2D sloppy strokes "
            "0.60 → 0.93); forced on separate objects about 0.01 worse; a 3-D training step takes "
            "about 1.1× as long (2D: no longer). auto: on when such a statistic tells your painted classes apart "
            "better than brightness does (a line under the class table says so); a run keeps the "
            "choice it started with. Part of the network: after a change, the next Train starts "
            "a new model.",
        )
        grid.addWidget(QLabel("Textures"), 3, 0)
        grid.addWidget(self.textures_combo, 3, 1)
        self.smooth_check = _checkbox(
            "smooth regions", self.controller.settings.smooth_textures,
            "With textures on, every prediction (live previews, Predict, exports) averages the "
            "probabilities of the classes that form regions over about 4 pixels before it decides: "
            "a texture class holds for a region, and a few strokes otherwise leave a mosaic of "
            "classes at the scale of the grains. Thin classes (a boundary a few pixels wide, as "
            "training sees the network predict them) are left as they are; training itself is not "
            "smoothed. Measured on textured tissue: foreground Dice +0.04 on average (casual "
            "strokes 0.81 → 0.88). Takes effect at the next Train (the same model goes on).",
        )
        grid.addWidget(self.smooth_check, 3, 2, 1, 2)
        self.level_combo = _combo(
            LEVEL_SLICES_CHOICES, self.controller.settings.level_slices,
            "For volumes whose background brightness runs along z (uneven illumination through the "
            "stack, bleaching): each z slice is levelled before the network sees it (less its 20 % "
            "quantile, smoothed over neighbouring slices), in training and in every prediction. "
            "Measured on such volumes: foreground Dice +0.05 on average (seeds 0–2), worse on textured tissue. auto: on for a volume whose "
            "background level runs along z more than your painted classes differ (a line under the "
            "class table says so); a run keeps the choice it started with. After a change, the next "
            "Train starts a new model.",
        )
        self.level_label = QLabel("Level slices")
        grid.addWidget(self.level_label, 4, 0)
        grid.addWidget(self.level_combo, 4, 1)
        self.downsample_spin = QSpinBox()
        self.downsample_spin.setRange(1, MAX_DOWNSAMPLE)
        self.downsample_spin.setPrefix("×")
        self.downsample_spin.setSpecialValueText("off")
        self.downsample_spin.setValue(self.controller.settings.downsample)
        self.downsample_spin.setToolTip(DOWNSAMPLE_TIP)
        grid.addWidget(QLabel("Downsample"), 5, 0)
        grid.addWidget(self.downsample_spin, 5, 1)
        self._dims_tooltips = {w: w.toolTip() for w in (self.wide_combo, self.level_combo)}
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        tl.addLayout(grid)
        row = QHBoxLayout()
        icons = self.style()
        self.train_btn = QPushButton(icons.standardIcon(QStyle.StandardPixmap.SP_MediaPlay), "Train")
        self.train_btn.setToolTip("Train (continues the current model when the settings allow)")
        self.pause_btn = QPushButton(icons.standardIcon(QStyle.StandardPixmap.SP_MediaPause), "Pause")
        self.pause_btn.setToolTip("Pause / resume training")
        self.stop_btn = QPushButton(icons.standardIcon(QStyle.StandardPixmap.SP_MediaStop), "Stop")
        self.stop_btn.setToolTip("Stop training (a checkpoint is written)")
        for b in (self.train_btn, self.pause_btn, self.stop_btn):
            row.addWidget(b)
        tl.addLayout(row)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(0)
        self.progress_bar.setTextVisible(False)
        self.progress_bar.setFixedHeight(8)
        keep = self.progress_bar.sizePolicy()
        keep.setRetainSizeWhenHidden(True)  # hidden while training until stopped: no jump
        self.progress_bar.setSizePolicy(keep)
        tl.addWidget(self.progress_bar)
        self.progress_label = QLabel("not trained yet")
        self.progress_label.setToolTip("iteration · loss · speed · time left")
        tl.addWidget(self.progress_label)
        self.plot = self._make_plot()
        self.validation_curves = ValidationCurves(self.plot, self.controller)
        tl.addWidget(self.plot)
        row = QHBoxLayout()
        self.live_check = QCheckBox("Live preview")
        self.live_check.setChecked(self.controller.settings.live_preview)
        self.live_check.setToolTip("Predict the visible region with the newest weights while training")
        self.interval_spin = QDoubleSpinBox()
        self.interval_spin.setRange(0.2, 600)
        self.interval_spin.setDecimals(1)
        self.interval_spin.setValue(self.controller.settings.preview_every_s)
        self.interval_spin.setSuffix(" s")
        self.interval_spin.setToolTip("Seconds between previews (takes effect at the next Train)")
        self.region_combo = QComboBox()
        self.region_combo.addItems(list(PREVIEW_REGIONS))
        self.region_combo.setToolTip("view: the current slice / visible part; image: everything")
        row.addWidget(self.live_check)
        row.addStretch(1)
        row.addWidget(QLabel("every"))
        row.addWidget(self.interval_spin)
        tl.addLayout(row)
        row = QHBoxLayout()
        row.addWidget(QLabel("region"))
        row.addWidget(self.region_combo)
        row.addStretch(1)
        tl.addLayout(row)
        col.addWidget(training)

        # -- objects
        self.objects_section = ObjectsSection(self.controller)
        col.addWidget(self.objects_section)

        # -- results
        results = QGroupBox("Results")
        rl = QVBoxLayout(results)
        row = QHBoxLayout()
        self.predict_combo = QComboBox()
        self.predict_combo.setToolTip(
            "Image to predict: the training image (into the prediction layer) or another open image"
        )
        rl.addWidget(self.predict_combo)
        self.predict_btn = QPushButton("Predict image")
        self.predict_btn.setToolTip("Predict the whole image chosen above with the newest weights")
        self.folder_btn = QPushButton("Predict folder…")
        self.folder_btn.setToolTip("Predict every image in a folder and write label files")
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setToolTip("Cancel the running prediction")
        self.cancel_btn.setEnabled(False)
        row.addWidget(self.predict_btn)
        row.addWidget(self.folder_btn)
        row.addWidget(self.cancel_btn)
        rl.addLayout(row)
        row = QHBoxLayout()
        self.proba_check = QCheckBox("with probabilities")
        self.proba_check.setToolTip("Predict image also adds one probability layer per class")
        row.addWidget(self.proba_check)
        row.addStretch(1)
        self.save_pred_btn = QPushButton("Save prediction…")
        self.save_pred_btn.setToolTip(
            "Write the whole-image prediction (TIFF, NIfTI, PNG, npy, OME-Zarr) with the image's "
            "spacing (and NIfTI affine)"
        )
        row.addWidget(self.save_pred_btn)
        rl.addLayout(row)
        self.predict_bar = QProgressBar()
        self.predict_bar.setFixedHeight(8)
        self.predict_bar.setTextVisible(False)
        self.predict_bar.setVisible(False)
        rl.addWidget(self.predict_bar)
        row = QHBoxLayout()
        row.addWidget(QLabel("Metrics vs"))
        self.truth_combo = QComboBox()
        self.truth_combo.setToolTip("Ground-truth Labels layer: classes (values 1..K) or objects (one id each)")
        row.addWidget(self.truth_combo, 1)
        self.metrics_btn = QPushButton("Compute")
        self.metrics_btn.setToolTip("Dice and 95% Hausdorff distance per class (whole image); against objects, "
                                    "the object scores too")
        row.addWidget(self.metrics_btn)
        rl.addLayout(row)
        row = QHBoxLayout()
        self.metrics_label = QLabel("")
        self.metrics_label.setTextFormat(Qt.TextFormat.RichText)
        self.metrics_label.setVisible(False)
        row.addWidget(self.metrics_label, 0, Qt.AlignmentFlag.AlignTop)
        self.object_scores_label = QLabel("")
        self.object_scores_label.setTextFormat(Qt.TextFormat.RichText)
        self.object_scores_label.setToolTip(
            "Objects matched one to one with the true objects: F1 at IoU 0.5, average precision over "
            "IoU 0.5:0.95, mean IoU of the matches; merges: one object over several true ones; splits: "
            "the converse")
        self.object_scores_label.setVisible(False)
        row.addWidget(self.object_scores_label, 0, Qt.AlignmentFlag.AlignTop)
        row.addStretch(1)
        rl.addLayout(row)
        row = QHBoxLayout()
        self.save_btn = QPushButton("Save run…")
        self.save_btn.setToolTip("Copy the run directory (config.json, model.pt, history.csv, classes.json)")
        row.addWidget(self.save_btn)
        self.export_btn = QPushButton("Export model…")
        self.export_btn.setToolTip("TorchScript, torch.export, ONNX or a bioimage.io zip, to use the model elsewhere")
        row.addWidget(self.export_btn)
        row.addStretch(1)
        rl.addLayout(row)
        row = QHBoxLayout()
        self.save_project_btn = QPushButton("Save project")
        self.save_project_btn.setToolTip(
            "Save image, classes, paintings, settings and runs into the project folder "
            "(paintings are also autosaved every 30 s once a project is saved)")
        self.save_project_as_btn = QPushButton("Save as…")
        self.save_project_as_btn.setToolTip("Save the project into another folder")
        for b in (self.save_project_btn, self.save_project_as_btn):
            row.addWidget(b)
        row.addStretch(1)
        rl.addLayout(row)
        row = QHBoxLayout()
        self.open_project_btn = QPushButton("Open project…")
        self.open_project_btn.setToolTip("Open a project folder (offers to recover autosaved paintings)")
        self.recover_btn = QPushButton("Recover…")
        self.recover_btn.setToolTip(
            "Paintings of earlier sessions on this image that were never saved as a project "
            f"(the newest {KEEP_AUTOSAVES} are kept, for {KEEP_AUTOSAVE_DAYS:.0f} days)")
        self.recover_menu = QMenu(self.recover_btn)
        self.recover_btn.setMenu(self.recover_menu)
        for b in (self.open_project_btn, self.recover_btn):
            row.addWidget(b)
        row.addStretch(1)
        rl.addLayout(row)
        col.addWidget(results)

        self.status_label = QLabel("Pick an image, paint a few strokes per class, press Train.")
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        col.addWidget(self.status_label)
        col.addStretch(1)

        # Combo and spin boxes size to a few characters, not to their longest item or largest
        # value: the dock stays narrow.
        for combo in body.findChildren(QComboBox):
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(COMBO_CHARS)
        for spin in body.findChildren(QAbstractSpinBox):
            spin.setMinimumWidth(SPIN_MIN_PX)
        # Never a horizontal scroll bar: the dock is at least as wide as its widest row.
        self.scroll = scroll
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.fit_width()
        self._redraw = QTimer(self)
        self._redraw.setInterval(REDRAW_MS)
        self._redraw.timeout.connect(self.redraw_progress)

    def fit_width(self) -> None:
        """Be at least as wide as the widest row (with the vertical scroll bar): the dock never
        cuts a row off (there is no horizontal scroll bar)."""
        scroll = self.scroll
        self.setMinimumWidth(scroll.widget().minimumSizeHint().width()
                             + scroll.verticalScrollBar().sizeHint().width() + 2 * scroll.frameWidth())

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        self.fit_width()  # the style is applied now: sizes are final
        super().showEvent(event)

    def _make_plot(self) -> QWidget:
        import pyqtgraph as pg

        plot = pg.PlotWidget()
        plot.setBackground(None)
        plot.setFixedHeight(PLOT_HEIGHT)
        plot.setMenuEnabled(False)
        plot.setMouseEnabled(x=False, y=False)
        plot.hideButtons()
        plot.showGrid(x=True, y=True, alpha=0.15)
        item = plot.getPlotItem()
        item.setDownsampling(auto=True, mode="mean")
        item.setClipToView(True)
        item.setLabel("left", "loss")
        item.setLabel("bottom", "iteration")
        for axis in ("left", "bottom"):
            item.getAxis(axis).setTextPen("#aaaaaa")
            item.getAxis(axis).setPen("#777777")
        self.raw_curve = plot.plot([], [], pen=pg.mkPen("#6b7a8f", width=1))
        self.ema_curve = plot.plot([], [], pen=pg.mkPen("#ffbe0b", width=2))
        item.setYRange(0, 1)
        item.enableAutoRange(axis="y", enable=True)
        item.getViewBox().setLimits(yMin=0)
        return plot

    # ------------------------------------------------------------------ wiring
    def _connect(self) -> None:
        c = self.controller
        c.classes_changed.connect(self._refresh_classes)
        c.weights_changed.connect(self._on_weights)
        c.mode_changed.connect(self._on_mode_changed)
        c.image_changed.connect(self._on_image_changed)
        c.training_state_changed.connect(self._on_state)
        c.progress.connect(self._on_progress)
        c.status.connect(self._set_status)
        c.error.connect(self._set_error)
        c.predict_progress.connect(self._on_predict_progress)
        c.metrics_ready.connect(self._on_metrics)
        c.object_scores_ready.connect(self._on_object_scores)

        self.image_combo.currentIndexChanged.connect(self._on_image_combo)
        self.channel_spin.valueChanged.connect(
            lambda v: c.set_channel_axis(None if v < 0 else int(v)) if not self._updating else None
        )
        self.mode_exclusive.toggled.connect(lambda on: on and not self._updating and c.set_mode(EXCLUSIVE))
        self.mode_multilabel.toggled.connect(lambda on: on and not self._updating and c.set_mode(MULTILABEL))
        self.add_class_btn.clicked.connect(lambda: c.add_class())
        self.remove_class_btn.clicked.connect(self._on_remove_class)
        self.method_combo.currentTextChanged.connect(c.set_weight_method)
        self.class_table.itemChanged.connect(self._on_item_changed)
        self.class_table.currentCellChanged.connect(lambda row, *_: row >= 0 and c.select_class(row))
        self.class_table.cellDoubleClicked.connect(self._on_cell_double_clicked)

        self.preset_combo.currentTextChanged.connect(lambda v: c.set_settings(preset=v))
        self.loss_combo.currentIndexChanged.connect(self._on_loss)
        self.device_combo.currentTextChanged.connect(lambda v: c.set_settings(device=v))
        self.length_combo.currentTextChanged.connect(self._on_length)
        self.iter_spin.valueChanged.connect(lambda v: c.set_settings(iterations=int(v)))
        self.minutes_spin.valueChanged.connect(lambda v: c.set_settings(minutes=float(v)))
        self.train_btn.clicked.connect(c.start_training)
        self.pause_btn.clicked.connect(c.toggle_pause)
        self.stop_btn.clicked.connect(c.stop_training)
        self.live_check.toggled.connect(lambda v: c.set_settings(live_preview=bool(v)))
        self.interval_spin.valueChanged.connect(lambda v: c.set_settings(preview_every_s=float(v)))
        self.region_combo.currentTextChanged.connect(lambda v: c.set_settings(preview_region=v))

        self.predict_btn.clicked.connect(lambda: c.predict_other(self.predict_combo.currentData()))
        self.cancel_btn.clicked.connect(c.cancel_predict)
        self.folder_btn.clicked.connect(self._on_predict_folder)
        self.metrics_btn.clicked.connect(self._on_metrics_clicked)
        self.save_btn.clicked.connect(self._on_save)
        self.export_btn.clicked.connect(self._on_export)
        self.save_project_btn.clicked.connect(self._on_save_project)
        self.save_project_as_btn.clicked.connect(self._on_save_project_as)
        self.open_project_btn.clicked.connect(self._on_open_project)
        c.ask = self._ask
        c.project_changed.connect(self._on_project_changed)
        c.kept_changed.connect(self._refresh_recover)
        self.recover_menu.aboutToShow.connect(self._fill_recover_menu)
        self.save_pred_btn.clicked.connect(self._on_save_prediction)
        self.proba_check.toggled.connect(lambda v: c.set_settings(probabilities=bool(v)))
        self.outlines_check.toggled.connect(lambda v: c.set_settings(infer_outlines=bool(v)))
        self.background_check.toggled.connect(lambda v: c.set_settings(infer_background=bool(v)))
        self.smooth_check.toggled.connect(lambda v: c.set_settings(smooth_textures=bool(v)))
        self.wide_combo.currentTextChanged.connect(lambda v: c.set_settings(wide_context=v))
        self.textures_combo.currentTextChanged.connect(lambda v: c.set_settings(textures=v))
        self.level_combo.currentTextChanged.connect(lambda v: c.set_settings(level_slices=v))
        self.downsample_spin.valueChanged.connect(lambda v: c.set_settings(downsample=int(v)))
        self.inferred_check.toggled.connect(c.show_inferred)

        layers = self.viewer.layers.events
        for ev in (layers.inserted, layers.removed, layers.reordered):
            ev.connect(self._refresh_layer_combos)
        for ev in self._batch_events():  # after the controller has handled the batch
            ev.connect(self._refresh_layer_combos, position="last")

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        self.controller.shutdown()
        super().closeEvent(event)

    def event(self, event: Any) -> bool:
        # napari's remove_dock_widget() orphans the widget (setParent(None)) without closing
        # it: treat "lost its dock" as the end of the session.
        if event.type() == QEvent.Type.ParentChange:
            if self.parent() is not None:
                self._had_parent = True
                # The dock joins the main window right after this: look once it has.
                QTimer.singleShot(0, self._watch_main_window)
            elif getattr(self, "_had_parent", False):
                self.controller.shutdown()
        return super().event(event)

    def _watch_main_window(self) -> None:
        try:
            top = self.window()
        except RuntimeError:  # deleted before the event loop came back
            return
        if isinstance(top, QMainWindow) and not getattr(self, "_watching", False):
            self._watching = True  # (no reference to the window: it would keep it alive)
            self.controller.watch_window(top)

    def _disconnect_viewer(self) -> None:
        layers = self.viewer.layers.events
        for ev in (layers.inserted, layers.removed, layers.reordered, *self._batch_events()):
            try:
                ev.disconnect(self._refresh_layer_combos)
            except Exception:  # noqa: BLE001
                pass

    def _batch_events(self) -> tuple[Any, ...]:
        """The end of a batch of layer changes (``viewer.layers.clear()``), where napari has it."""
        end = getattr(self.viewer.layers.events, "end_batch", None)
        return () if end is None else (end,)

    # ------------------------------------------------------------------ layer combos
    def _image_layers(self) -> list[Any]:
        return [lyr for lyr in self.viewer.layers if lyr.__class__.__name__ == "Image"]

    def _truth_layers(self) -> list[Any]:
        c = self.controller
        own = set(map(id, c.paint_layers + c.prediction_layers))
        return [
            lyr for lyr in self.viewer.layers
            if lyr.__class__.__name__ == "Labels" and id(lyr) not in own
            and (lyr.metadata or {}).get("segstudio", {}).get("role") not in ("paintings", "prediction", OBJECTS_ROLE)
        ]

    def _refresh_layer_combos(self, event: Any = None) -> None:
        if self.controller.closed:
            self._disconnect_viewer()
            return
        if self.controller.in_layers_batch:
            return  # once, when the batch ends
        self._updating = True
        try:
            images = self._image_layers()
            self.image_combo.clear()
            for lyr in images:
                self.image_combo.addItem(lyr.name, lyr)
            current = self.controller.image_layer
            if current in images:
                self.image_combo.setCurrentIndex(images.index(current))
            keep_target = self.predict_combo.currentData()
            self.predict_combo.clear()
            for lyr in images:
                self.predict_combo.addItem(lyr.name, lyr)
            if keep_target in images:
                self.predict_combo.setCurrentIndex(images.index(keep_target))
            elif current in images:
                self.predict_combo.setCurrentIndex(images.index(current))
            truths = self._truth_layers()
            keep = self.truth_combo.currentData()
            self.truth_combo.clear()
            for lyr in truths:
                self.truth_combo.addItem(lyr.name, lyr)
            if keep in truths:
                self.truth_combo.setCurrentIndex(truths.index(keep))
            else:
                preferred = [i for i, lyr in enumerate(truths)
                             if (lyr.metadata or {}).get("segstudio", {}).get("role") == "truth"]
                if preferred:
                    self.truth_combo.setCurrentIndex(preferred[0])
        finally:
            self._updating = False
        if (self.controller.image_layer is None or self.controller.image_layer not in images) and images:
            self.image_combo.setCurrentIndex(len(images) - 1)
            self.controller.set_image_layer(images[-1])
        elif not images and self.controller.image_layer is not None:
            self.controller.set_image_layer(None)
        self.metrics_btn.setEnabled(self.truth_combo.count() > 0)

    def _on_image_combo(self, index: int) -> None:
        if self._updating or index < 0:
            return
        self.controller.set_image_layer(self.image_combo.itemData(index))

    def _on_image_changed(self) -> None:
        c = self.controller
        self._updating = True
        try:
            if c.image_layer is not None:
                ndim = c.image_array().ndim
                self.channel_spin.setRange(-1, ndim - 1)
                self.channel_spin.setValue(-1 if c.channel_axis is None else c.channel_axis)
                self.channel_spin.setEnabled(not getattr(c.image_layer, "rgb", False))
        finally:
            self._updating = False
        self._refresh_dims_settings()
        self._refresh_layer_combos()

    def _refresh_dims_settings(self) -> None:
        """Grey out the setting the open image's dimensions leave aside (*wide context* on a
        volume, *level slices* on a 2-D image: off there, whatever they say, and kept for the
        next image they apply to), with a tooltip that says why."""
        dims = len(self.controller.spatial_shape) if self.controller.image_layer is not None else 0
        running = self.controller.is_training
        for combo, label, applies, why in (
                (self.wide_combo, self.wide_label, dims != 3, "Not used on a volume (this image is 3-D). "),
                (self.level_combo, self.level_label, dims != 2, "Not used on a 2-D image (only on volumes). ")):
            combo.setEnabled(applies and not running)
            label.setEnabled(applies)
            combo.setToolTip(("" if applies else why) + self._dims_tooltips[combo])

    # ------------------------------------------------------------------ classes
    def _refresh_classes(self) -> None:
        c = self.controller
        self._updating = True
        try:
            table = self.class_table
            table.setRowCount(len(c.classes))
            for row, spec in enumerate(c.classes):
                swatch = QTableWidgetItem("")
                swatch.setIcon(_swatch_icon(spec.color))
                swatch.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
                swatch.setToolTip("double-click to change the colour")
                table.setItem(row, COL_SWATCH, swatch)
                name = QTableWidgetItem(spec.name)
                table.setItem(row, COL_NAME, name)
                for col in (COL_COUNT, COL_WEIGHT, COL_LEARNT):
                    if table.item(row, col) is None:
                        item = QTableWidgetItem("–")
                        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                        table.setItem(row, col, item)
                for col in (COL_COUNT, COL_LEARNT):
                    table.item(row, col).setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
                pin = QTableWidgetItem("")
                pin.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsSelectable)
                pin.setCheckState(Qt.CheckState.Checked if spec.pinned is not None else Qt.CheckState.Unchecked)
                pin.setToolTip("pin: keep this weight instead of the computed one")
                table.setItem(row, COL_PIN, pin)
            self._fit_table_height()
        finally:
            self._updating = False
        if c.weights is not None and len(c.weights.weights) == len(c.classes):
            self._on_weights(c.weights)
        training = c.is_training
        self.add_class_btn.setEnabled(not training)
        self.remove_class_btn.setEnabled(not training and len(c.classes) > 1)

    def _fit_table_height(self) -> None:
        t = self.class_table
        rows = t.verticalHeader().defaultSectionSize() * t.rowCount()
        header = max(t.horizontalHeader().sizeHint().height(), t.horizontalHeader().height())
        t.setFixedHeight(header + rows + 2 * t.frameWidth() + 2)

    def _on_weights(self, weights: Any) -> None:
        c = self.controller
        self._updating = True
        try:
            multi = weights.mode == MULTILABEL
            for row in range(min(self.class_table.rowCount(), len(weights.weights))):
                count = self.class_table.item(row, COL_COUNT)
                if count is not None:
                    n = weights.counts[row]
                    if multi and weights.absent_counts:
                        count.setText(f"{_group_count(n)} / {_group_count(weights.absent_counts[row])}")
                        count.setToolTip("present / absent pixels")
                    else:
                        count.setText(_group_count(n))
                w = self.class_table.item(row, COL_WEIGHT)
                if w is not None:
                    pinned = row < len(c.classes) and c.classes[row].pinned is not None
                    w.setText(f"{weights.weights[row]:.2f}")
                    font = w.font()
                    font.setBold(pinned)
                    w.setFont(font)
                    tempered = tempered_note(weights.coverage)
                    dense = (f", {tempered}: the paintings cover {weights.coverage:.0%} of their bounding box "
                             "(dense labels count the classes' own frequencies)" if tempered else "")
                    w.setToolTip(("pos_weight" if multi else f"weight ({weights.method})") + dense)
        finally:
            self._updating = False
        self.weights_note.setText("\n".join(weights.warnings))
        self.weights_note.setVisible(bool(weights.warnings))

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if self._updating:
            return
        c, row, col = self.controller, item.row(), item.column()
        if col == COL_NAME:
            c.rename_class(row, item.text())
        elif col == COL_WEIGHT:
            try:
                value = float(item.text())
            except ValueError:
                self._set_error(f"'{item.text()}' is not a number")
                self._refresh_classes()
                return
            c.set_pinned_weight(row, value)
        elif col == COL_PIN:
            if item.checkState() == Qt.CheckState.Checked:
                current = c.weights.weights[row] if c.weights is not None and row < len(c.weights.weights) else 1.0
                c.set_pinned_weight(row, float(current))
            else:
                c.set_pinned_weight(row, None)

    def _on_cell_double_clicked(self, row: int, col: int) -> None:
        if col != COL_SWATCH:
            return
        spec = self.controller.classes[row]
        color = QColorDialog.getColor(QColor(spec.color), self, f"Colour of {spec.name}")
        if color.isValid():
            self.controller.set_class_color(row, color.name())

    def _on_remove_class(self) -> None:
        row = self.class_table.currentRow()
        self.controller.remove_class(row if row >= 0 else len(self.controller.classes) - 1)

    # ------------------------------------------------------------------ mode / settings
    def _on_mode_changed(self, mode: str) -> None:
        self._updating = True
        try:
            self.mode_exclusive.setChecked(mode == EXCLUSIVE)
            self.mode_multilabel.setChecked(mode == MULTILABEL)
            self.loss_combo.clear()
            for name in LOSS_NAMES[mode]:
                self.loss_combo.addItem(LOSS_LABELS.get(name, name), name)
            current = self.controller.loss_name()
            self.loss_combo.setCurrentIndex(max(self.loss_combo.findData(current), 0))
            self.method_combo.setEnabled(not self.controller.is_training)
            self.outlines_check.setEnabled(not self.controller.is_training)
            self.background_check.setEnabled(not self.controller.is_training)
            self.method_combo.setToolTip(
                "How class weights are computed from the painted pixel counts"
                if mode == EXCLUSIVE else "How pos_weight is computed from the present and absent pixel counts")
        finally:
            self._updating = False

    def _on_loss(self, index: int) -> None:
        if not self._updating and index >= 0:
            self.controller.set_settings(loss=self.loss_combo.itemData(index))

    def _on_length(self, length: str) -> None:
        self.controller.set_settings(length=length)
        self.iter_spin.setVisible(length == "iterations")
        self.minutes_spin.setVisible(length == "minutes")

    # ------------------------------------------------------------------ training display
    def _on_state(self, state: str) -> None:
        running = state in ("running", "paused", "stopping")
        self.train_btn.setEnabled(not running)
        self.pause_btn.setEnabled(state in ("running", "paused"))
        paused = state == "paused"
        self.pause_btn.setText("Resume" if paused else "Pause")
        self.pause_btn.setIcon(self.style().standardIcon(
            QStyle.StandardPixmap.SP_MediaPlay if paused else QStyle.StandardPixmap.SP_MediaPause))
        self.stop_btn.setEnabled(state in ("running", "paused"))
        for w in (self.preset_combo, self.textures_combo, self.smooth_check, self.loss_combo, self.device_combo,
                  self.length_combo, self.downsample_spin,
                  self.iter_spin, self.minutes_spin, self.mode_exclusive, self.mode_multilabel, self.image_combo,
                  self.channel_spin, self.recover_btn, self.open_project_btn):
            w.setEnabled(not running)
        self.method_combo.setEnabled(not running)
        self._refresh_dims_settings()
        if not running:
            self._refresh_recover()
        if getattr(self.controller.image_layer, "rgb", False):
            self.channel_spin.setEnabled(False)
        self.add_class_btn.setEnabled(not running)
        self.outlines_check.setEnabled(not running)
        self.background_check.setEnabled(not running)
        self.remove_class_btn.setEnabled(not running and len(self.controller.classes) > 1)
        if running:
            self._redraw.start()
            if not self.controller.loss_values:
                self._plotted = 0
                self._ema = []
        else:
            self._redraw.stop()
            self.redraw_progress()

    def _on_progress(self, event: Any) -> None:
        self._progress = event  # drawn by the redraw timer, at most every REDRAW_MS

    def redraw_progress(self) -> None:
        """Redraw the progress line and the loss curve (the redraw timer does, while training)."""
        ev = self._progress
        c = self.controller
        if ev is not None:
            rate = c.iterations_per_second()
            parts = [f"it {ev.iteration}" + (f"/{ev.total}" if ev.total else ""), f"loss {ev.loss:.3f}"]
            if rate is not None:
                parts.append(f"{rate:.1f} it/s")
            if ev.eta_s is not None:
                parts.append(f"ETA {_fmt_duration(ev.eta_s)}")
            else:
                parts.append(f"{_fmt_duration(ev.seconds)} elapsed")
            if c.state == "paused":
                parts.append("paused")
            self.progress_label.setText(" · ".join(parts))
            self._show_learnt(ev)
            if ev.total:
                self._show_progress(ev.iteration / ev.total)
            elif ev.eta_s is not None:
                self._show_progress(ev.seconds / max(ev.seconds + ev.eta_s, 1e-9))
            else:
                # Until stopped there is nothing to fill, and no busy indicator either: Qt
                # animates one at the screen's frame rate, and with napari's OpenGL canvas in
                # the window every frame recomposes the whole window (0.8 CPU s per s of two
                # cores under software OpenGL, taken from training). The line above (iteration,
                # it/s, time elapsed) shows that training is alive.
                self._show_progress(None)
        self._update_plot()

    def _show_learnt(self, ev: Any) -> None:
        """The *Learnt* column and the note under the class table, from a Progress event."""
        learnt = ev.learnt
        names = [spec.name for spec in self.controller.classes]
        flagged = set(unlearnt(learnt, ev.learnt_steps))
        self._updating = True
        try:
            for row in range(self.class_table.rowCount()):
                item = self.class_table.item(row, COL_LEARNT)
                if item is None:
                    continue
                share = learnt[row] if row < len(learnt) else None
                item.setText("–" if share is None else f"{100 * share:.0f} %")
                item.setForeground(QColor(WARN_COLOR) if row in flagged else self.class_table.palette().text())
        finally:
            self._updating = False
        note = unlearnt_message(names, learnt, ev.learnt_steps)
        self.learnt_note.setText(note)
        self.learnt_note.setVisible(bool(note))

    def _show_progress(self, done: float | None) -> None:
        """Fill the training bar to ``done`` (0..1); ``None``: no bar (its space is kept)."""
        bar = self.progress_bar
        bar.setVisible(done is not None)
        if done is not None:
            bar.setValue(int(1000 * min(max(done, 0.0), 1.0)))

    def _update_plot(self) -> None:
        c = self.controller
        n = len(c.loss_values)
        if n < self._plotted:  # a new (not resumed) run
            self._plotted, self._ema = 0, []
        if n == self._plotted:
            return
        ema = self._ema
        prev = ema[-1] if ema else None
        for i, v in enumerate(c.loss_values[self._plotted:n], start=self._plotted):
            # A short window at first (so the curve does not lag the early drop), then EMA.
            alpha = max(LOSS_EMA, EMA_WARMUP / (i + EMA_WARMUP))
            v = float(v)
            prev = v if prev is None else prev + alpha * (v - prev)
            ema.append(prev)
        self._plotted = n
        x = np.asarray(c.loss_iterations[:n], dtype=float)
        y = np.asarray(c.loss_values[:n], dtype=float)
        self.raw_curve.setData(x, y)
        self.ema_curve.setData(x, np.asarray(ema))

    # ------------------------------------------------------------------ results
    def _on_predict_progress(self, done: int, total: int) -> None:
        busy = total > 0
        self.predict_bar.setVisible(busy)
        self.cancel_btn.setEnabled(busy)
        self.predict_btn.setEnabled(not busy)
        self.folder_btn.setEnabled(not busy)
        if busy:
            self.predict_bar.setRange(0, total)
            self.predict_bar.setValue(done)

    def _on_predict_folder(self) -> None:
        src = QFileDialog.getExistingDirectory(self, "Folder of images to predict")
        if not src:
            return
        dst = QFileDialog.getExistingDirectory(self, "Folder to write label images to")
        if dst:
            self.controller.predict_folder(src, dst)

    def _on_metrics_clicked(self) -> None:
        layer = self.truth_combo.currentData()
        if layer is None:
            self._set_error("choose a ground-truth Labels layer")
            return
        self.controller.compute_metrics(layer)

    def _on_metrics(self, rows: list[Any]) -> None:
        cells = "".join(
            f"<tr><td>{r.name}</td><td align='right'>&nbsp;{r.dice:.3f}</td>"
            f"<td align='right'>&nbsp;{('–' if not np.isfinite(r.hd95) else f'{r.hd95:.2f}')}</td></tr>"
            for r in rows
        )
        self.metrics_label.setText(
            "<table cellspacing='2'><tr><th align='left'>class</th><th>&nbsp;Dice</th>"
            f"<th>&nbsp;HD95</th></tr>{cells}</table>"
        )
        self.metrics_label.setVisible(True)

    def _on_object_scores(self, scores: Any) -> None:
        """Object scores beside the Dice/HD95 table (hidden for a truth of classes)."""
        self.object_scores_label.setVisible(scores is not None)
        if scores is None:
            return

        def num(v: float) -> str:
            return "–" if not np.isfinite(v) else f"{v:.3f}"

        cells = "".join(f"<tr><td>{k}</td><td align='right'>&nbsp;{v}</td></tr>" for k, v in (
            ("F1 @ 0.5", num(scores.f1)), ("AP 0.5:0.95", num(scores.average_precision)),
            ("matched IoU", num(scores.mean_matched_iou)), ("objects", f"{scores.n_pred} / {scores.n_true}"),
            ("merges", str(scores.merges)), ("splits", str(scores.splits))))
        self.object_scores_label.setText(f"<table cellspacing='2'>{cells}</table>")

    def _on_save_prediction(self) -> None:
        layer = self.controller.image_layer
        source = layer_meta(layer).get("path") if layer is not None else None
        suffix = ".nii.gz" if source and str(source).lower().endswith((".nii", ".nii.gz")) else ".tif"
        name = f"{layer.name if layer is not None else 'image'}_prediction{suffix}"
        dest, _ = QFileDialog.getSaveFileName(
            self, "Save the prediction", name,
            "Images (*.tif *.tiff *.nii.gz *.nii *.png *.npy *.zarr);;All files (*)",
        )
        if dest:
            self.controller.save_prediction(dest)

    def _on_save(self) -> None:
        dest = QFileDialog.getExistingDirectory(self, "Save the run into folder")
        if dest:
            self.controller.save_run(dest)

    def _on_export(self) -> None:
        from segstudio.core.export import EXTENSIONS

        filters = {f"{label} (*{EXTENSIONS[fmt]})": fmt for fmt, label in EXPORT_FORMAT_LABELS}
        dest, chosen = QFileDialog.getSaveFileName(self, "Export the model", "model.pt", ";;".join(filters))
        if dest:
            by_suffix = [f for f, ext in EXTENSIONS.items() if dest.lower().endswith(ext)]
            self.controller.export_model(dest, by_suffix[0] if by_suffix else filters.get(chosen, "torchscript"))

    def _on_save_project(self) -> None:
        if self.controller.project_dir is None:
            self._on_save_project_as()
        else:
            self.controller.save_project()

    def _on_save_project_as(self) -> None:
        dest = QFileDialog.getExistingDirectory(self, "Save the project into folder")
        if dest:
            self.controller.save_project(dest)

    def _refresh_recover(self) -> None:
        self.recover_btn.setEnabled(bool(self.controller.kept_autosaves()))

    def _fill_recover_menu(self) -> None:
        self.recover_menu.clear()
        for kept in self.controller.kept_autosaves():
            action = self.recover_menu.addAction(f"paintings autosaved {kept.label}")
            action.setToolTip(str(kept.folder))
            action.triggered.connect(lambda _=False, folder=kept.folder: self.controller.open_project(folder))

    def _on_open_project(self) -> None:
        src = QFileDialog.getExistingDirectory(self, "Open project folder")
        if src:
            self.controller.open_project(src)

    def _on_project_changed(self, folder: str) -> None:
        """Show the opened project's settings in the controls."""
        s = self.controller.settings
        self._updating = True
        try:
            self.preset_combo.setCurrentText(s.preset)
            self.device_combo.setCurrentText(s.device)
            self.length_combo.setCurrentText(s.length)
            self.iter_spin.setValue(s.iterations)
            self.minutes_spin.setValue(s.minutes)
            self.live_check.setChecked(s.live_preview)
            self.interval_spin.setValue(s.preview_every_s)
            self.region_combo.setCurrentText(s.preview_region)
            self.proba_check.setChecked(s.probabilities)
            self.outlines_check.setChecked(s.infer_outlines)
            self.background_check.setChecked(s.infer_background)
            self.wide_combo.setCurrentText(s.wide_context)
            self.textures_combo.setCurrentText(s.textures)
            self.smooth_check.setChecked(s.smooth_textures)
            self.level_combo.setCurrentText(s.level_slices)
            self.downsample_spin.setValue(s.downsample)
            self.method_combo.setCurrentText(self.controller.weight_method)
        finally:
            self._updating = False
        self.iter_spin.setVisible(s.length == "iterations")
        self.minutes_spin.setVisible(s.length == "minutes")
        self._refresh_classes()

    def _ask(self, message: str) -> bool:
        answer = QMessageBox.question(
            self, "segstudio", message[:1].upper() + message[1:],
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes,
        )
        return answer == QMessageBox.StandardButton.Yes

    # ------------------------------------------------------------------ status
    def _set_status(self, text: str) -> None:
        self.status_label.setStyleSheet("")
        self.status_label.setText(text)

    def _set_error(self, text: str) -> None:
        self.status_label.setStyleSheet("color: #ff6b6b;")
        self.status_label.setText(f"⚠ {text}")
