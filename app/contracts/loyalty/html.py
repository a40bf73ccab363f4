"""The browsable page of the loyalty register (`.api` / `?format=api` / browsers).

Everything user-supplied is HTML-escaped; the only markup added to the JSON is links on
the `url`, `next` and `previous` keys, whose values the service built itself.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from fastapi.responses import HTMLResponse

from app.errors import FieldError
from app.loyalty.schemas import MAX_LENGTH, parse_boolean

_LINK = re.compile(
    r"&quot;(url|next|previous)&quot;: &quot;(https?://(?:(?!&quot;)[^\s<>])*)&quot;"
)

_STYLE = """
body{font-family:system-ui,sans-serif;margin:0;background:#f5f5f5;color:#222}
header{background:#2c3e50;color:#fff;padding:.8em 2em}header a{color:#fff}
main{max-width:60em;margin:1.5em auto;padding:0 1em}
pre{background:#fff;border:1px solid #ddd;padding:1em;overflow:auto}
.req{font-family:monospace;background:#fff;border:1px solid #ddd;padding:.5em 1em}
.pager a{margin-right:1em}
form.item{background:#fff;border:1px solid #ddd;padding:1em;margin:1em 0}
form.item label{display:block;margin:.4em 0}form.item input,form.item select{width:20em}
textarea{width:100%;min-height:8em;font-family:monospace}
.hint{color:#666;font-size:.9em}
.errors{color:#b00020;margin:.2em 0;padding-left:1.2em}
form.item input[aria-invalid],form.item textarea[aria-invalid]{border:2px solid #b00020}
"""

# Browsers cannot add an Authorization header to a plain link or form: with a token saved
# here, links and forms are sent with fetch() and the answer (HTML again) replaces the page.
_SCRIPT = """
(function(){
var KEY='jambo.loyalty.token',box=document.getElementById('token');
box.value=sessionStorage.getItem(KEY)||'';
function go(method,url,body){
 var t=sessionStorage.getItem(KEY);if(!t){return false;}
 var h={'Accept':'text/html','Authorization':'Bearer '+t};
 if(body!==null){h['Content-Type']='application/x-www-form-urlencoded';}
 fetch(url,{method:method,headers:h,body:body}).then(function(r){
  return r.text().then(function(x){
   if(method==='GET'){history.pushState(null,'',r.url||url);}
   window.jamboFetched=true;document.open();document.write(x);document.close();});});
 return true;}
// A page opened directly (no header) answered 401: retry once with the saved token.
if(!window.jamboFetched&&document.body.dataset.status==='401'){go('GET',location.href,null);}
document.getElementById('token-form').addEventListener('submit',function(e){
 e.preventDefault();sessionStorage.setItem(KEY,box.value.trim());go('GET',location.href,null);});
document.addEventListener('click',function(e){
 var a=e.target.closest('a[data-api]');if(a&&go('GET',a.href,null)){e.preventDefault();}});
document.querySelectorAll('form[data-api]').forEach(function(f){
 f.addEventListener('submit',function(e){
  if(f.dataset.confirm&&!window.confirm(f.dataset.confirm)){e.preventDefault();return;}
  if(go('POST',f.action,new URLSearchParams(new FormData(f)).toString())){e.preventDefault();}});});
})();
"""

# Only this page's own script and styles run; it cannot be framed (clickjacking).
_SCRIPT_HASH = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()
PAGE_CSP = (
    f"default-src 'self'; script-src 'sha256-{_SCRIPT_HASH}'; style-src 'unsafe-inline'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _pretty(data: object) -> str:
    text = _e(json.dumps(data, indent=4, ensure_ascii=False))
    return _LINK.sub(r'&quot;\1&quot;: &quot;<a data-api href="\2">\2</a>&quot;', text)


@dataclass(frozen=True)
class Submitted:
    """What a form sent, to show it again (with its errors) when it was refused."""

    values: Mapping[str, Any] | None = None  # the member's fields, as typed
    raw: str | None = None  # the raw-data form's text


def _messages(errors: object) -> list[str]:
    """Every message of an error body: `{field: [msg]}`, a bulk list of them, or `{detail}`."""
    if isinstance(errors, list):
        return [
            f"item {i}: {m}" for i, item in enumerate(errors, 1) if item for m in _messages(item)
        ]
    if not isinstance(errors, Mapping):
        return []
    out: list[str] = []
    for field, texts in errors.items():
        for text in texts if isinstance(texts, list) else [texts]:
            out.append(str(text) if field in ("detail", "non_field_errors") else f"{field}: {text}")
    return out


def _error_list(messages: list[str], ident: str) -> str:
    if not messages:
        return ""
    items = "".join(f"<li>{_e(m)}</li>" for m in messages)
    return f'<ul class="errors" id="{ident}" role="alert">{items}</ul>'


def _input(name: str, label: str, value: object, errors: list[str], **attrs: object) -> str:
    extra = " ".join(f'{k.replace("_", "-")}="{_e(v)}"' for k, v in attrs.items())
    shown = "" if value is None else _e(value)
    invalid = f' aria-invalid="true" aria-describedby="{name}-errors"' if errors else ""
    return (
        f'<label>{_e(label)}<br><input name="{name}" value="{shown}" {extra}{invalid}>'
        f"{_error_list(errors, f'{name}-errors')}</label>"
    )


def _choice(value: object) -> str:
    """The is_male option a value selects: stored booleans and typed text alike."""
    try:
        parsed = parse_boolean(value)
    except FieldError:
        return ""
    return "" if parsed is None else "true" if parsed else "false"


def _fields(current: Mapping[str, Any], errors: Mapping[str, Any]) -> str:
    def said(name: str) -> list[str]:
        found = errors.get(name)
        return [str(m) for m in found] if isinstance(found, list) else []

    birthday = str(current.get("client_birthday") or "")[:10]
    male = _choice(current.get("is_male"))
    options = "".join(
        f'<option value="{v}"{" selected" if male == v else ""}>{t}</option>'
        for v, t in (("", "unknown"), ("true", "male"), ("false", "female"))
    )
    known = ("loyalty_id", "cardno", "discount", "client_name", "client_birthday", "is_male")
    others = _messages({k: v for k, v in errors.items() if k not in known})
    return "".join(
        [
            _error_list(others, "form-errors"),
            _input(
                "loyalty_id",
                "loyalty_id *",
                current.get("loyalty_id"),
                said("loyalty_id"),
                required="",
                maxlength=MAX_LENGTH["loyalty_id"],
            ),
            _input(
                "cardno",
                "cardno",
                current.get("cardno"),
                said("cardno"),
                maxlength=MAX_LENGTH["cardno"],
            ),
            _input(
                "discount",
                "discount",
                current.get("discount"),
                said("discount"),
                inputmode="decimal",
            ),
            _input(
                "client_name",
                "client name *",
                current.get("client_name"),
                said("client_name"),
                required="",
                maxlength=MAX_LENGTH["client_name"],
            ),
            _input(
                "client_birthday",
                "client birthday *",
                birthday,
                said("client_birthday"),
                type="date",
                required="",
            ),
            f'<label>is male<br><select name="is_male">{options}</select>'
            f"{_error_list(said('is_male'), 'is_male-errors')}</label>",
        ]
    )


# The seed's bulk example, shown greyed: a placeholder is never sent, so the form as shipped
# creates or changes nothing (a prefilled sample once replaced member 10 on one click).
_RAW_PLACEHOLDER = (
    'For example (replace it):\n[\n  {"loyalty_id": "10", "client_name": "Customer #1", '
    '"client_birthday": "10/20/1970"}\n]'
)


def _list_forms(action: str, submitted: Submitted | None, errors: object) -> str:
    values: Mapping[str, Any] = {}
    field_errors: Mapping[str, Any] = {}
    raw, raw_errors = "", []
    if submitted is not None and submitted.raw is not None:
        raw, raw_errors = submitted.raw, _messages(errors)
    elif submitted is not None and submitted.values is not None:
        values = submitted.values
        field_errors = errors if isinstance(errors, Mapping) else {}
    invalid = ' aria-invalid="true" aria-describedby="raw-errors"' if raw_errors else ""
    return (
        f'<form class="item" data-api method="post" action="{_e(action)}">'
        "<h2>Add or replace a member</h2>"
        '<p class="hint">An existing loyalty_id is replaced, as the register does.</p>'
        f"{_fields(values, field_errors)}<p><button type=submit>POST</button></p></form>"
        f'<form class="item" data-api method="post" action="{_e(action)}">'
        "<h2>Raw JSON (one object or a list)</h2>"
        '<input type="hidden" name="_content_type" value="application/json">'
        f'<textarea name="_content" placeholder="{_e(_RAW_PLACEHOLDER)}"{invalid}>'
        f"{_e(raw)}</textarea>{_error_list(raw_errors, 'raw-errors')}"
        "<p><button type=submit>POST</button></p></form>"
    )


def _item_forms(
    action: str, current: Mapping[str, Any], submitted: Submitted | None, errors: object
) -> str:
    values: Mapping[str, Any] = current
    field_errors: Mapping[str, Any] = {}
    if submitted is not None and submitted.values is not None:
        values = submitted.values
        field_errors = errors if isinstance(errors, Mapping) else {}
    key = current.get("loyalty_id")
    question = f"Delete member {key}?" if key else "Delete this member?"
    return (
        f'<form class="item" data-api method="post" action="{_e(action)}">'
        '<h2>Replace this member</h2><input type="hidden" name="_method" value="PUT">'
        f"{_fields(values, field_errors)}<p><button type=submit>PUT</button></p></form>"
        f'<form class="item" data-api method="post" action="{_e(action)}" '
        f'data-confirm="{_e(question + " This cannot be undone.")}">'
        '<input type="hidden" name="_method" value="DELETE">'
        "<button type=submit>DELETE this member</button></form>"
    )


def browsable_page(
    *,
    title: str,
    method: str,
    path: str,
    status: int,
    headers: Mapping[str, str],
    data: object,
    list_url: str,
    action: str,
    item: Mapping[str, Any] | None = None,
    is_list: bool = True,
    submitted: Submitted | None = None,
) -> HTMLResponse:
    """The page: request line, status and headers, the escaped JSON, pager and forms."""
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
    shown = "".join(f"<b>{_e(k)}:</b> {_e(v)}<br>" for k, v in headers.items())
    pager = ""
    if isinstance(data, dict):
        links = [
            f'<a data-api rel="{rel}" href="{_e(data[rel])}">{label}</a>'
            for rel, label in (("previous", "« previous"), ("next", "next »"))
            if isinstance(data.get(rel), str)
        ]
        pager = f'<p class="pager">{"".join(links)}</p>' if links else ""
    # A refused form comes back with what was typed and each message beside its field.
    shown_back = submitted if status >= 400 else None
    if is_list:
        forms = _list_forms(action, shown_back, data)
    else:
        forms = _item_forms(action, item or {}, shown_back, data)
    body = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width'>"
        f"<title>{_e(title)} – Jambo</title><style>{_STYLE}</style></head>"
        f'<body data-status="{status}">'
        f'<header><a data-api href="{_e(list_url)}">Jambo loyalty register</a></header><main>'
        f"<h1>{_e(title)}</h1>"
        # The token box first: a page opened without one answers 401 right below it.
        '<form id="token-form" class="item"><h2>Bearer token</h2>'
        '<p class="hint">Browsers cannot send an Authorization header themselves: paste a '
        "staff token (<code>jambo token --staff</code>) to browse and post with it.</p>"
        '<input id="token" type="password" autocomplete="off"> '
        "<button type=submit>Use token</button></form>"
        f'<p class="req"><b>{_e(method)}</b> {_e(path)}</p>'
        f'<p class="req">HTTP {status} {_e(phrase)}<br>{shown}</p>'
        f"<pre>{_pretty(data)}</pre>{pager}{forms}"
        f"</main><script>{_SCRIPT}</script></body></html>"
    )
    return HTMLResponse(body, status_code=status, headers={"Content-Security-Policy": PAGE_CSP})
