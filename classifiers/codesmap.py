"""The map of the codes in report.html: ``<div id="codes-map">``, one point per image.

The points (a 2-D projection, ``classifiers.datareview.map_codes``) travel as JSON inside
the page and a small script draws them as SVG, coloured by class, with test mistakes and
suspect labels marked; hovering (or tapping) a point shows its thumbnail, path, split,
label and prediction; the wheel (or the buttons) zooms and dragging pans. The thumbnails
are tiles of one JPEG sprite: a JPEG's own tables cost about 600 bytes, more than a 32 px
tile's pixels, so one sprite of 2,500 tiles weighs about a third of as many images.

Opened as ``report.html#maptest``, the page hovers the first point once loaded and writes
what the tooltip showed into ``<pre id="maptest">`` (the browser test reads it).
"""

from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from html import escape

import numpy as np
from PIL import Image

__all__ = ["TILE", "MISTAKE", "SUSPECT", "CodesMap", "sprite_uri", "render_map"]

TILE = 32
"""Side of a map thumbnail in the sprite, in pixels (shown at three times that)."""
MISTAKE, SUSPECT = 1, 2
"""Flags of a point: a test image the best model gets wrong, a suspect training label."""


@dataclass
class CodesMap:
    """What the map draws.

    ``xy`` is ``(n_points, 2)`` in [0, 1]; ``labels`` and ``predicted`` index ``classes``
    (``predicted`` -1 when unknown); ``flags`` combine ``MISTAKE`` and ``SUSPECT``;
    ``sprite`` is a data URI of the thumbnails in row-major tiles of ``TILE`` pixels
    (``sprite_uri``), or None; ``note`` says what the map shows and what was sampled.
    """

    xy: np.ndarray
    ids: list[str]
    splits: list[str]
    labels: np.ndarray
    predicted: np.ndarray
    flags: np.ndarray
    classes: list[str]
    sprite: str | None
    note: str


def sprite_uri(images: Iterable[Image.Image | None], count: int, quality: int = 70) -> str | None:
    """``count`` images fitted into ``TILE`` x ``TILE`` tiles of one JPEG, ``ceil(sqrt(count))``
    tiles a row, as a data URI; None leaves its tile grey, and when every image is None
    there is no sprite (None). The images are read one at a time, so large photos are never
    all held in memory."""
    columns = max(1, math.ceil(math.sqrt(count)))
    sheet = Image.new("RGB", (columns * TILE, max(1, math.ceil(count / columns)) * TILE), (238, 238, 238))
    pasted = False
    for index, image in enumerate(images):
        if image is None:
            continue
        picture = image.convert("RGB")
        scale = TILE / max(picture.size)
        picture = picture.resize((max(1, round(picture.width * scale)), max(1, round(picture.height * scale))),
                                 Image.Resampling.BICUBIC if scale > 1 else Image.Resampling.LANCZOS)
        row, column = divmod(index, columns)
        sheet.paste(picture, (column * TILE + (TILE - picture.width) // 2, row * TILE + (TILE - picture.height) // 2))
        pasted = True
    if not pasted:
        return None
    buffer = io.BytesIO()
    sheet.save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


STYLE = """
#codes-map { position: relative; border: 1px solid #ddd; height: 620px; max-width: 100%; touch-action: none; }
#codes-map svg { width: 100%; height: 100%; cursor: grab; display: block; }
#codes-map .tip { position: absolute; pointer-events: none; background: #fff; border: 1px solid #999;
                  padding: 4px; font-size: 11px; display: none; max-width: 220px; overflow-wrap: anywhere; }
#codes-map .tip canvas { display: block; background: #f3f3f3; }
#codes-map .zoom { position: absolute; right: 6px; top: 6px; } #codes-map .zoom button { width: 2em; }
.legend span { display: inline-block; margin-right: 1em; font-size: 12px; }
.legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; border-radius: 50%; }
"""

SCRIPT = """
"use strict";
(() => {
  const box = document.getElementById("codes-map");
  const data = JSON.parse(document.getElementById("codes-map-data").textContent);
  const NS = "http://www.w3.org/2000/svg", RADIUS = 0.0045, TILE = data.tile;
  const svg = document.createElementNS(NS, "svg"), layer = document.createElementNS(NS, "g");
  let view = [-0.02, -0.02, 1.04, 1.04];
  const show = () => svg.setAttribute("viewBox", view.join(" "));
  const colour = (label) => data.palette[label % data.palette.length];
  const shapes = data.points.map(([x, y, label, predicted, flags], index) => {
    const suspect = flags & 2, shape = document.createElementNS(NS, suspect ? "rect" : "circle");
    if (suspect) { shape.setAttribute("x", x - RADIUS); shape.setAttribute("y", y - RADIUS); }
    else { shape.setAttribute("cx", x); shape.setAttribute("cy", y); }
    shape.setAttribute("fill", colour(label));
    if (flags) { shape.setAttribute("stroke", "#000"); shape.setAttribute("stroke-width", flags & 1 ? 2 : 1); }
    shape.setAttribute("vector-effect", "non-scaling-stroke");
    shape.dataset.index = index;
    layer.appendChild(shape);
    return shape;
  });
  const resize = () => {
    const radius = RADIUS * view[2];
    shapes.forEach((shape) => {
      if (shape.tagName === "rect") {
        const x = data.points[shape.dataset.index][0], y = data.points[shape.dataset.index][1];
        shape.setAttribute("x", x - radius); shape.setAttribute("y", y - radius);
        shape.setAttribute("width", 2 * radius); shape.setAttribute("height", 2 * radius);
      } else shape.setAttribute("r", radius);
    });
  };
  svg.appendChild(layer); box.appendChild(svg); show(); resize();

  const sprite = new Image();
  if (data.sprite) sprite.src = data.sprite;
  const tip = document.createElement("div"), canvas = document.createElement("canvas"), text = document.createElement("div");
  canvas.width = canvas.height = 3 * TILE;
  tip.className = "tip"; tip.append(canvas, text); box.appendChild(tip);
  function showTip(shape) {
    const index = Number(shape.dataset.index), [, , label, predicted, flags, id, split] = data.points[index];
    const context = canvas.getContext("2d"), columns = data.columns;
    context.clearRect(0, 0, canvas.width, canvas.height);
    if (data.sprite && sprite.complete && sprite.naturalWidth) {
      context.drawImage(sprite, (index % columns) * TILE, Math.floor(index / columns) * TILE, TILE, TILE,
                        0, 0, canvas.width, canvas.height);
    }
    const lines = [id, `${split}, label: ${data.classes[label]}`,
                   `predicted: ${predicted < 0 ? "-" : data.classes[predicted]}`];
    if (flags & 1) lines.push("a test mistake");
    if (flags & 2) lines.push("a suspect label");
    text.textContent = lines.join("\\n");
    text.style.whiteSpace = "pre-line";
    const bounds = box.getBoundingClientRect(), at = shape.getBoundingClientRect();
    tip.style.left = `${Math.min(at.left - bounds.left + 12, bounds.width - 230)}px`;
    tip.style.top = `${Math.min(at.top - bounds.top + 12, bounds.height - 160)}px`;
    tip.style.display = "block";
    tip.dataset.index = index;
  }
  layer.addEventListener("mouseover", (event) => { if (event.target.dataset.index) showTip(event.target); });
  svg.addEventListener("mouseleave", () => { tip.style.display = "none"; });

  function zoom(factor, cx, cy) {
    const width = view[2] * factor;
    if (width < 0.005 || width > 4) return;
    view = [cx - (cx - view[0]) * factor, cy - (cy - view[1]) * factor, width, width];
    show(); resize();
  }
  const toMap = (event) => {
    const bounds = svg.getBoundingClientRect(), side = Math.min(bounds.width, bounds.height);
    return [view[0] + (event.clientX - bounds.left - (bounds.width - side) / 2) / side * view[2],
            view[1] + (event.clientY - bounds.top - (bounds.height - side) / 2) / side * view[3]];
  };
  svg.addEventListener("wheel", (event) => {
    event.preventDefault();
    zoom(event.deltaY > 0 ? 1.25 : 0.8, ...toMap(event));
  }, { passive: false });
  let drag = null;
  svg.addEventListener("pointerdown", (event) => { drag = { x: event.clientX, y: event.clientY, view: view.slice(), moved: false }; });
  svg.addEventListener("pointermove", (event) => {
    if (!drag) return;
    const bounds = svg.getBoundingClientRect(), side = Math.min(bounds.width, bounds.height);
    const dx = event.clientX - drag.x, dy = event.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
    view = [drag.view[0] - dx / side * view[2], drag.view[1] - dy / side * view[3], view[2], view[3]];
    show();
  });
  svg.addEventListener("pointerup", (event) => {
    if (drag && !drag.moved && event.target.dataset.index) showTip(event.target);  // a tap shows the point
    drag = null;
  });
  const buttons = document.createElement("div");
  buttons.className = "zoom";
  [["+", () => zoom(0.8, view[0] + view[2] / 2, view[1] + view[3] / 2)],
   ["\\u2212", () => zoom(1.25, view[0] + view[2] / 2, view[1] + view[3] / 2)],
   ["\\u21ba", () => { view = [-0.02, -0.02, 1.04, 1.04]; show(); resize(); }]].forEach(([label, action]) => {
    const button = document.createElement("button");
    button.type = "button"; button.textContent = label; button.addEventListener("click", action);
    buttons.appendChild(button);
  });
  box.appendChild(buttons);

  window.addEventListener("load", async () => {
    if (location.hash !== "#maptest") return;
    const errors = [];
    window.addEventListener("error", (event) => errors.push(String(event.message)));
    if (data.sprite) await sprite.decode().catch((error) => errors.push(String(error)));
    const before = svg.getAttribute("viewBox");
    svg.dispatchEvent(new WheelEvent("wheel", { deltaY: -100, clientX: 100, clientY: 100, bubbles: true, cancelable: true }));
    const zoomed = svg.getAttribute("viewBox") !== before;
    shapes[0].dispatchEvent(new MouseEvent("mouseover", { bubbles: true }));
    const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    let painted = 0;
    for (let at = 3; at < pixels.length; at += 4) painted += pixels[at] > 0;
    const out = document.createElement("pre");
    out.id = "maptest";
    out.textContent = JSON.stringify({ errors, points: shapes.length, shown: tip.style.display === "block",
                                       text: text.textContent, painted: painted / (canvas.width * canvas.height),
                                       zoomed });
    document.body.appendChild(out);
  });
})();
"""

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7",
           "#dbdb8d", "#9edae5"]
"""Class colours (matplotlib's tab10, then tab20's light ones); more classes reuse them."""


def render_map(codes_map: CodesMap) -> str:
    """The map's HTML: its note, a legend, the ``codes-map`` box, its data and its script."""
    points = [[round(float(x), 4), round(float(y), 4), int(label), int(predicted), int(flags), sample_id, split]
              for (x, y), label, predicted, flags, sample_id, split in zip(
                  codes_map.xy, codes_map.labels, codes_map.predicted, codes_map.flags, codes_map.ids,
                  codes_map.splits)]
    data = {"classes": codes_map.classes, "palette": PALETTE, "tile": TILE, "sprite": codes_map.sprite,
            "columns": max(1, math.ceil(math.sqrt(len(points)))), "points": points}
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")  # no "</script>" inside the data
    legend = "".join(f'<span><i style="background: {PALETTE[index % len(PALETTE)]}"></i>{escape(name)}</span>'
                     for index, name in enumerate(codes_map.classes))
    return "\n".join([
        f'<p class="note">{escape(codes_map.note)}</p>',
        f'<p class="legend">{legend}<span>thick black ring: a test mistake</span>'
        "<span>black square: a suspect label</span></p>",
        '<div id="codes-map"></div>',
        f'<script type="application/json" id="codes-map-data">{payload}</script>',
        f"<script>{SCRIPT}</script>",
    ])
