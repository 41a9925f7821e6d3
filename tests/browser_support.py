"""Helpers for the browser tests: Chromium, a watch on what a page does wrong, axe-core, screenshots."""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# axe-core 4.14.1, from npm (`npm pack axe-core@4`), MPL-2.0: see its LICENSE beside it.
AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
SCREENSHOTS = Path(__file__).parent / "screenshots"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]


def launch(playwright: Any) -> Any:
    """Debian's Chromium; its absence is a failure, never a skip."""
    if not CHROMIUM.exists() or shutil.which(str(CHROMIUM)) is None:
        pytest.fail(f"the browser tests need Chromium at {CHROMIUM} (Debian package `chromium`); it is missing")
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def wait_for_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer 200 within {timeout} s: {last}")


@dataclass
class Watch:
    """What a page did that it must not: CSP violations, script errors, dialogs (an injected alert()), a resource
    it asked for that is not there."""

    csp: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> Any:
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("dialog", self._dialog)
        return page

    def _console(self, message: Any) -> None:
        if message.type != "error":
            return
        if "Content Security Policy" in message.text:
            self.csp.append(message.text)
        elif "status of 404" in message.text:
            self.missing.append(f"{message.location.get('url')}: {message.text}")

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def assert_clean(self) -> None:
        assert not self.csp, f"Content-Security-Policy violations: {self.csp}"
        assert not self.errors, f"script errors: {self.errors}"
        assert not self.dialogs, f"dialogs opened: {self.dialogs}"
        assert not self.missing, f"resources not found: {self.missing}"


def audit(page: Any, label: str) -> list[dict[str, Any]]:
    """Run axe-core in the page; fail on serious or critical violations, print the others."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(path=str(AXE))
    result = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", AXE_TAGS)
    violations: list[dict[str, Any]] = result["violations"]
    summary = [
        {"id": v["id"], "impact": v["impact"], "help": v["help"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in violations
    ]
    minor = [s for s in summary if s["impact"] not in ("serious", "critical")]
    if minor:
        print(f"axe, {label}: minor or moderate findings:\n{json.dumps(minor, indent=1)}")
    grave = [s for s in summary if s["impact"] in ("serious", "critical")]
    assert not grave, f"axe, {label}: serious or critical violations:\n{json.dumps(grave, indent=1)}"
    return violations


def fits_the_width(page: Any) -> bool:
    """True when nothing makes the page itself scroll sideways (tables scroll inside their own region)."""
    return bool(page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth"))


def chart_words_hidden(page: Any) -> list[str]:
    """The words of the page's charts that cannot be read whole: cut by the edge of their chart, or drawn over
    another word of it (an axis' title over its tick labels, say)."""
    return page.evaluate(  # type: ignore[no-any-return]
        """() => {
          const hidden = [];
          const box = e => e.getBoundingClientRect();
          const inside = (b, edge) => b.left >= edge.left - 1 && b.right <= edge.right + 1
                                      && b.top >= edge.top - 1 && b.bottom <= edge.bottom + 1;
          const overlap = (a, b) => Math.min(a.right, b.right) - Math.max(a.left, b.left) > 1
                                    && Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 1;
          for (const svg of document.querySelectorAll('svg[role="img"]')) {
            const edge = box(svg);
            if (edge.width === 0) continue;  // not shown (a closed details, a hidden slot)
            const words = [...svg.querySelectorAll("text")].filter(t => t.textContent.trim());
            words.forEach((word, i) => {
              const b = box(word);
              if (!inside(b, edge)) hidden.push(svg.getAttribute("class") + ": " + word.textContent + " (cut)");
              for (const other of words.slice(i + 1)) {
                if (overlap(b, box(other))) {
                  hidden.push(svg.getAttribute("class") + ": " + word.textContent + " over " + other.textContent);
                }
              }
            });
          }
          return hidden;
        }"""
    )


def fields_out_of_line(page: Any) -> list[str]:
    """Fields side by side (their boxes share a line) whose inputs do not stand at one height, and a button beside
    inputs that does not stand on their line."""
    return page.evaluate(  # type: ignore[no-any-return]
        """() => {
          const off = [];
          const box = e => e.getBoundingClientRect();
          const top = e => Math.round(box(e).top);
          const share = (a, b) => Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 1;
          for (const form of document.querySelectorAll("form")) {
            const fields = [...form.querySelectorAll(".field")].filter(f => box(f).width > 0
              && f.querySelector(":scope > input, :scope > select") && f.querySelector(":scope > label"));
            for (const field of fields) {
              const line = fields.filter(f => share(box(f), box(field)));
              const tops = line.map(f => top(f.querySelector(":scope > input, :scope > select")));
              if (new Set(tops).size > 1) off.push(line.map(f => f.querySelector("label").textContent).join(" | ")
                                                   + ": inputs at " + tops);
            }
            const inputs = fields.map(f => f.querySelector(":scope > input, :scope > select"));
            for (const button of form.querySelectorAll(":scope > button")) {
              const beside = inputs.filter(i => share(box(i), box(button)));
              if (beside.some(i => top(i) !== top(button))) {
                off.push(button.textContent.trim() + " at " + top(button) + ", beside inputs at " + beside.map(top));
              }
            }
          }
          return [...new Set(off)];
        }"""
    )


def names_broken_inside(page: Any) -> list[str]:
    """Names in table cells (`td > code`: column names, say) that wrap inside a word rather than after an
    underscore or at a space."""
    return page.evaluate(  # type: ignore[no-any-return]
        """() => {
          const broken = [];
          for (const code of document.querySelectorAll("td > code")) {
            const text = code.textContent;
            const range = document.createRange();
            let chars = [];
            for (const node of [...code.childNodes].filter(n => n.nodeType === Node.TEXT_NODE)) {
              for (let i = 0; i < node.length; i++) {
                range.setStart(node, i);
                range.setEnd(node, i + 1);
                chars.push([node.data[i], Math.round(range.getBoundingClientRect().top)]);
              }
            }
            chars.forEach(([c, top], i) => {
              if (i > 0 && top > chars[i - 1][1] && !"_ ".includes(chars[i - 1][0]) && c !== " ") {
                broken.push(text + " after " + text.slice(0, i));
              }
            });
          }
          return broken;
        }"""
    )


def values_under_labels(page: Any) -> list[str]:
    """Cells of a table stacked one block per row (a phone's width) whose value does not all stand beside its label:
    a cell holding a link and some words, say, whose words wrapped under the label instead of after the link."""
    return page.evaluate(  # type: ignore[no-any-return]
        """() => {
          const off = [];
          for (const cell of document.querySelectorAll("table.stack td[data-label]")) {
            if (getComputedStyle(cell, "::before").content === "none") continue;  // a wide screen: a plain table
            const range = document.createRange();
            range.selectNodeContents(cell);
            const lefts = [...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.left));
            if (lefts.some(left => left < lefts[0] - 1)) {  // a line of the value starts left of where it began
              off.push(cell.dataset.label + ": " + cell.textContent.trim().replace(/\\s+/g, " "));
            }
          }
          return [...new Set(off)];
        }"""
    )


def icon(page: Any) -> list[Any] | None:
    """The status and type of the icon the page names for its tab, fetched as the browser would; None if it names
    none (the browser then asks for /favicon.ico, once per run, which a test's page may never see)."""
    return page.evaluate(  # type: ignore[no-any-return]
        """async () => {
          const link = document.querySelector('link[rel~="icon"]');
          if (!link) return null;
          const response = await fetch(link.href);
          return [response.status, response.headers.get("Content-Type")];
        }"""
    )


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
