"""Sphinx extension: drop duplicate <script> tags from every page.

Jupyter Book 1 registers sphinx-thebe's (and togglebutton's) inline configuration scripts
twice, so every page emits ``const THEBE_JS_URL = ...`` twice and the second copy throws
"Identifier 'THEBE_JS_URL' has already been declared" in the browser. Keeping the first of
identical scripts removes the error without touching the theme.
"""

from __future__ import annotations


def _dedupe(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        # the two copies differ only in filename (None vs ""), both meaning "inline script"
        key = (str(getattr(script, "filename", script) or ""),
               tuple(sorted((k, str(v)) for k, v in getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", _dedupe)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
