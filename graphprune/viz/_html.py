"""One self-contained HTML page: inline SVG drawn here, inline CSS and JS, no network access.

The SVG markup (nodes, edges, colors) and the legend are written in Python so the page shows the
graph even before any script runs; the script only adds pan/zoom, tooltips, search, highlight and
the collapsed/full toggle. Node and group details travel in one ``application/json`` block.
"""
from __future__ import annotations

import html
import json

from ._layout import NODE_H, Layout, layout
from ._view import View, VNode

__all__ = ["to_html", "svg_body", "layout_view", "node_width", "MAX_STRIPES"]

MAX_STRIPES = 8


def node_width(n: VNode) -> float:
    return 190.0 if n.collapsed else 150.0


def layout_view(view: View) -> Layout:
    params = {n.id for n in view.nodes if n.op == "get_attr"}
    return layout([n.id for n in view.nodes], view.edges, params, widths={n.id: node_width(n) for n in view.nodes})


def _esc(s) -> str:
    return html.escape(str(s), quote=True)


def _fit(text: str, width: float, px: float = 5.6) -> str:
    """Shorten ``text`` from the left so it fits ``width`` pixels (module paths keep their tail)."""
    n = max(4, int(width / px))
    return text if len(text) <= n else "\u2026" + text[-(n - 1):]


def _node_svg(n: VNode, box, colors: dict[int, str], blocked: dict[int, bool]) -> str:
    gids = n.color_groups
    shown = gids[:MAX_STRIPES]
    cls = ["node"] + (["blocked-op"] if n.blocked else []) + (["collapsed"] if n.collapsed else []) \
        + (["nogroup"] if not gids else [])
    mods = " ".join([n.module] if n.module else []) + (" " + " ".join(n.inner_modules) if n.inner_modules else "")
    parts = [f'<g class="{" ".join(cls)}" data-id="{_esc(n.id)}" data-groups="{" ".join(map(str, gids))}" '
             f'data-modules="{_esc(mods.strip())}" transform="translate({box.x:.0f},{box.y:.0f})">']
    w, h = box.w, box.h
    if n.collapsed:
        parts.append(f'<rect class="shadow" x="4" y="4" width="{w:.0f}" height="{h}" rx="5"/>')
    parts.append(f'<rect class="bg" width="{w:.0f}" height="{h}" rx="5"/>')
    if shown:
        sw = w / len(shown)
        for i, g in enumerate(shown):
            parts.append(f'<rect class="stripe" data-gid="{g}" x="{i * sw:.1f}" width="{sw + 0.5:.1f}" '
                         f'height="{h}" fill="{colors[g]}"/>')
            if blocked[g]:
                parts.append(f'<rect class="hatch" x="{i * sw:.1f}" width="{sw + 0.5:.1f}" height="{h}"/>')
    parts.append(f'<rect class="frame" width="{w:.0f}" height="{h}" rx="5"/>')
    top = n.target.rsplit(".", 1)[-1] if not n.collapsed else n.target
    if n.blocked:
        top = "\u2298 " + top
    sub = n.label.split(" ", 1)[-1] if n.collapsed else (n.module or n.id)
    if len(gids) > len(shown):
        top += f"  +{len(gids) - len(shown)} groups"
    parts.append(f'<text x="6" y="12">{_esc(_fit(top, w - 8))}</text>')
    parts.append(f'<text class="sub" x="6" y="{NODE_H - 6}">{_esc(_fit(sub, w - 8, 5.2))}</text></g>')
    return "".join(parts)


def svg_body(view: View, lay: Layout) -> str:
    """The ``<g>`` content of one view: edges first, then nodes."""
    colors = {g.id: g.color for g in view.groups}
    blocked = {g.id: not g.prunable for g in view.groups}
    out = ['<g class="edges">']
    for s, t in view.edges:
        out.append(f'<path d="{lay.edge_path(s, t)}" data-s="{_esc(s)}" data-t="{_esc(t)}"/>')
    out.append('</g><g class="nodes">')
    out.extend(_node_svg(n, lay.boxes[n.id], colors, blocked) for n in view.nodes)
    out.append("</g>")
    return "".join(out)


def _legend(view: View) -> str:
    rows = []
    for g in view.groups:
        state = g.state
        kept = "" if g.kept is None else (f' \u00b7 <span class="kept">kept {g.kept}/{g.size}</span>'
                                           + (f" (\u2212{g.removed})" if g.removed else ""))
        mods = ", ".join(g.modules[:6]) + (f", \u2026 (+{len(g.modules) - 6})" if len(g.modules) > 6 else "")
        rows.append(
            f'<li class="grp{"" if g.prunable else " blocked"}" data-gid="{g.id}" data-color="{g.color}" '
            f'data-prunable="{int(g.prunable)}" data-reason="{_esc(g.reason)}" data-kept="{"" if g.kept is None else g.kept}">'
            f'<span class="sw" data-gid="{g.id}" style="background-color:{g.color}"></span>'
            f'<span class="gt"><b>#{g.id}</b> {g.size} ch \u00b7 {g.n_members} members{kept}<br>'
            f'<span class="{("ok" if g.exact else "inexact") if g.prunable else "why"}">{_esc(state)}</span><br>'
            f'<span class="mods">{_esc(mods)}</span></span></li>')
    return "".join(rows)


def _details(view: View) -> dict:
    return {n.id: {"op": n.op, "target": n.target, "module": n.module, "shape": n.shape, "groups": n.groups,
                   "params": n.param_groups, "blocked": n.blocked, "collapsed": n.collapsed,
                   "inner": len(n.inner), "inner_modules": n.inner_modules[:40]} for n in view.nodes}


def to_html(view: View, title: str | None = None) -> str:
    """The interactive page for ``view`` (and its uncollapsed ``view.full``, behind a toggle)."""
    title = title or f"graphprune groups: {view.name}"
    views = [("main", view, layout_view(view))]
    if view.full is not None:
        views.append(("full", view.full, layout_view(view.full)))
    svgs = []
    for key, v, lay in views:
        hidden = ' style="display:none"' if key != "main" else ""
        svgs.append(f'<g class="view" id="view-{key}" data-w="{lay.width:.0f}" data-h="{lay.height:.0f}"{hidden}>'
                    f'{svg_body(v, lay)}</g>')
    details = {}
    for _, v, _ in views:
        details.update(_details(v))
    n_prunable = sum(g.prunable for g in view.groups)
    planned = any(g.kept is not None for g in view.groups)
    removed = sum(g.removed or 0 for g in view.groups)
    stats = (f"{len((view.full or view).nodes)} nodes \u00b7 {len(view.groups)} groups "
             f"({n_prunable} prunable, {len(view.groups) - n_prunable} blocked)"
             + (f" \u00b7 plan removes {removed} channels" if planned else ""))
    data = {"groups": {g.id: {"size": g.size, "prunable": g.prunable, "reason": g.reason, "color": g.color,
                              "exact": g.exact, "inexact_reason": g.inexact_reason,
                              "kept": g.kept, "n_members": g.n_members} for g in view.groups},
            "nodes": details}
    blob = json.dumps(data, separators=(",", ":"), default=list).replace("</", "<\\/")
    toggle = ('<button id="toggle" title="show every node / collapse repeated blocks">expand all</button>'
              if view.full is not None else "")
    note = "".join(f'<div class="note">{_esc(text)}</div>' for text in (view.note, _guards_note(view)) if text)
    return _PAGE.format(title=_esc(title), stats=_esc(stats), toggle=toggle, note=note, css=_CSS, js=_JS,
                        svg="".join(svgs), legend=_legend(view), data=blob, n_groups=len(view.groups))


def _guards_note(view: View) -> str:
    """The input sizes the analysis assumed (the tracer's guards), shown over the graph."""
    if not view.guards:
        return ""
    shown = "; ".join(view.guards[:4]) + (f"; … (+{len(view.guards) - 4})" if len(view.guards) > 4 else "")
    return f"traced for inputs with {shown}"


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{css}</style></head>
<body>
<header><h1>{title}</h1><span class="stats">{stats}</span>
<input id="search" type="search" placeholder="search module name (Enter: next)" autocomplete="off">
<span id="hits"></span><button id="fit" title="fit the graph to the window (f)">fit</button>{toggle}</header>
<main>
<div id="canvas"><svg id="svg" width="100%" height="100%"><defs>
<pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">
<rect width="2.2" height="6" fill="#3b3b3b" fill-opacity="0.45"/></pattern>
<marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse">
<path d="M0,0L10,5L0,10z" fill="#8a8f98"/></marker></defs>
<g id="vp">{svg}</g></svg>{note}
<div id="tip" hidden></div></div>
<aside id="legend"><div class="lh"><b>{n_groups} channel groups</b>
<label><input type="checkbox" id="onlyblocked"> blocked only</label>
<div class="key"><span class="sw"></span> prunable <span class="sw hatched"></span> blocked (reason below)
<span class="sw opb"></span> op without a rule</div></div>
<ol id="groups">{legend}</ol></aside>
</main>
<script type="application/json" id="gp-data">{data}</script>
<script>{js}</script>
</body></html>
"""

_CSS = """
*{box-sizing:border-box}html,body{margin:0;height:100%;font:13px/1.35 system-ui,-apple-system,"Segoe UI",
"DejaVu Sans",sans-serif;color:#1f2328;background:#fff}
header{display:flex;gap:12px;align-items:center;padding:8px 14px;border-bottom:1px solid #d0d7de;background:#f6f8fa}
header h1{font-size:15px;margin:0;white-space:nowrap}.stats{color:#57606a;white-space:nowrap}
#search{margin-left:auto;width:280px;padding:4px 8px;border:1px solid #d0d7de;border-radius:6px}
#hits{color:#57606a;min-width:60px}button{padding:4px 10px;border:1px solid #d0d7de;border-radius:6px;background:#fff;cursor:pointer}
main{display:flex;height:calc(100% - 46px)}#canvas{flex:1;position:relative;overflow:hidden;cursor:grab;background:#fcfcfd}
#canvas.drag{cursor:grabbing}#svg{display:block;user-select:none}
.edges path{fill:none;stroke:#8a8f98;stroke-width:1.1;opacity:.55;marker-end:url(#arrow)}
.edges path.hl{stroke:#0969da;opacity:1;stroke-width:2}
.node{cursor:pointer}.node .bg{fill:#f3f4f6}.node .shadow{fill:#c9ced6}
.node .frame{fill:none;stroke:#4b5563;stroke-width:.8}.node.blocked-op .frame{stroke:#cf222e;stroke-width:2.2;stroke-dasharray:5 3}
.node.collapsed .frame{stroke-width:1.8;stroke-dasharray:2 2}.node .hatch{fill:url(#hatch)}
.node text{font-size:10.5px;fill:#111;pointer-events:none;font-weight:600}.node text.sub{font-size:9.5px;font-weight:400;fill:#222}
.node.nogroup .frame{stroke:#9aa1aa}
svg.focus .node{opacity:.15}svg.focus .edges path{opacity:.08}svg.focus .node.hl{opacity:1}
.node.hl .frame{stroke:#0969da;stroke-width:3}.node.match .frame{stroke:#bf3989;stroke-width:3.5}
#tip{position:absolute;max-width:460px;background:#fff;border:1px solid #8c959f;border-radius:6px;padding:8px 10px;
box-shadow:0 4px 14px rgba(0,0,0,.18);font-size:12px;pointer-events:none;z-index:5}
#tip.pinned{pointer-events:auto}#tip table{border-collapse:collapse}#tip td{padding:1px 6px 1px 0;vertical-align:top}
#tip .g{display:inline-block;width:10px;height:10px;border:1px solid #555;margin-right:3px;vertical-align:middle}
aside{width:360px;border-left:1px solid #d0d7de;overflow:auto;background:#fff}
.lh{position:sticky;top:0;background:#f6f8fa;padding:8px 10px;border-bottom:1px solid #d0d7de}.lh label{float:right}
.key{color:#57606a;margin-top:4px;font-size:12px}
#groups{list-style:none;margin:0;padding:0}.grp{display:flex;gap:8px;padding:5px 10px;border-bottom:1px solid #eaeef2;cursor:pointer}
.grp:hover,.grp.sel{background:#ddf4ff}.grp .mods{color:#57606a;font-size:11px;word-break:break-all}
.grp .why{color:#9a6700}.grp .ok{color:#1a7f37}.grp .inexact{color:#8250df}.kept{font-weight:600}
.sw{display:inline-block;flex:none;width:16px;height:16px;border:1px solid #555;border-radius:3px;vertical-align:middle;background:#5ba8d9}
.grp.blocked .sw,.sw.hatched{background-image:repeating-linear-gradient(45deg,rgba(59,59,59,.5) 0 2px,transparent 2px 6px)}
.sw.hatched{background-color:#adb8be}.sw.opb{background:#f3f4f6;border:2px dashed #cf222e}
#groups.onlyblocked .grp:not(.blocked){display:none}
.note{position:absolute;left:10px;bottom:8px;color:#57606a;background:rgba(255,255,255,.85);padding:2px 6px;border-radius:4px}
"""

_JS = r"""
(function(){
'use strict';
var D=JSON.parse(document.getElementById('gp-data').textContent);
var svg=document.getElementById('svg'),vp=document.getElementById('vp'),canvas=document.getElementById('canvas');
var tip=document.getElementById('tip'),search=document.getElementById('search'),hits=document.getElementById('hits');
var cur=document.getElementById('view-main');var T={x:0,y:0,k:1};var pinned=null;
function apply(){vp.setAttribute('transform','translate('+T.x+','+T.y+') scale('+T.k+')');}
function fit(){var r=canvas.getBoundingClientRect(),w=+cur.dataset.w,h=+cur.dataset.h;
 T.k=Math.min(r.width/w,r.height/h,1.5);T.x=(r.width-w*T.k)/2;T.y=Math.max(0,(r.height-h*T.k)/2);apply();}
function center(el){var b=el.getBBox(),m=el.transform.baseVal.consolidate().matrix,r=canvas.getBoundingClientRect();
 if(T.k<0.9)T.k=0.9;T.x=r.width/2-(m.e+b.width/2)*T.k;T.y=r.height/2-(m.f+b.height/2)*T.k;apply();}
canvas.addEventListener('wheel',function(e){e.preventDefault();var r=canvas.getBoundingClientRect();
 var px=e.clientX-r.left,py=e.clientY-r.top,f=Math.exp(-e.deltaY*0.0015),k=Math.max(0.02,Math.min(6,T.k*f));
 T.x=px-(px-T.x)*k/T.k;T.y=py-(py-T.y)*k/T.k;T.k=k;apply();},{passive:false});
var drag=null;
canvas.addEventListener('mousedown',function(e){if(e.button!==0)return;drag={x:e.clientX,y:e.clientY,tx:T.x,ty:T.y,moved:false};canvas.classList.add('drag');});
window.addEventListener('mousemove',function(e){if(!drag)return;var dx=e.clientX-drag.x,dy=e.clientY-drag.y;
 if(Math.abs(dx)+Math.abs(dy)>3)drag.moved=true;T.x=drag.tx+dx;T.y=drag.ty+dy;apply();});
window.addEventListener('mouseup',function(){canvas.classList.remove('drag');setTimeout(function(){drag=null;},0);});
function esc(s){return String(s).replace(/[&<>"]/g,function(c){return{'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c];});}
function gchip(g){var G=D.groups[g];if(!G)return esc(g);return '<span class="g" style="background:'+G.color+'"></span>#'+g+
 ' ('+G.size+(G.kept!==null?', kept '+G.kept:'')+(G.prunable?'':', blocked')+')';}
function tipHtml(id){var n=D.nodes[id];if(!n)return esc(id);var rows=[];
 rows.push(['node',esc(id)]);rows.push(['op',esc(n.op)+' \u00b7 '+esc(n.target)]);
 if(n.module)rows.push(['module',esc(n.module)]);if(n.shape)rows.push(['shape','('+n.shape.join(', ')+')']);
 if(n.collapsed)rows.push(['collapsed',n.collapsed+' blocks, '+n.inner+' nodes']);
 var dims=(n.groups||[]).map(function(gs,d){return gs.length?'dim '+d+': '+gs.slice(0,12).map(gchip).join(' ')+(gs.length>12?' \u2026 +'+(gs.length-12):''):'';}).filter(Boolean);
 if(dims.length)rows.push(['channels',dims.join('<br>')]);
 if(n.params&&n.params.length)rows.push(['weights',n.params.slice(0,8).map(function(p){return esc(p[1])+' '+p[2]+' '+gchip(p[0]);}).join('<br>')]);
 var why=[];(n.groups||[]).forEach(function(gs){gs.forEach(function(g){var G=D.groups[g];if(G&&!G.prunable&&why.indexOf(G.reason)<0)why.push(G.reason);});});
 if(n.blocked)rows.unshift(['no rule','<b style="color:#cf222e">'+esc(n.blocked)+'</b>: its channels are blocked']);
 if(why.length)rows.push(['blocked',why.slice(0,4).map(esc).join('<br>')]);
 if(n.inner_modules&&n.inner_modules.length)rows.push(['inside',esc(n.inner_modules.slice(0,8).join(', '))+(n.inner_modules.length>8?' \u2026':'')]);
 return '<table>'+rows.map(function(r){return '<tr><td><b>'+r[0]+'</b></td><td>'+r[1]+'</td></tr>';}).join('')+'</table>';}
function showTip(el,e){var r=canvas.getBoundingClientRect();tip.innerHTML=tipHtml(el.dataset.id);tip.hidden=false;
 var x=e.clientX-r.left+14,y=e.clientY-r.top+14;if(x+tip.offsetWidth>r.width)x=Math.max(0,x-tip.offsetWidth-28);
 if(y+tip.offsetHeight>r.height)y=Math.max(0,y-tip.offsetHeight-28);tip.style.left=x+'px';tip.style.top=y+'px';}
function nodeOf(t){while(t&&t!==svg){if(t.classList&&t.classList.contains('node'))return t;t=t.parentNode;}return null;}
svg.addEventListener('mousemove',function(e){if(pinned||drag&&drag.moved)return;var n=nodeOf(e.target);if(n)showTip(n,e);else tip.hidden=true;});
svg.addEventListener('mouseleave',function(){if(!pinned)tip.hidden=true;});
function clearHl(){svg.classList.remove('focus');cur.querySelectorAll('.hl').forEach(function(x){x.classList.remove('hl');});
 document.querySelectorAll('.grp.sel').forEach(function(x){x.classList.remove('sel');});}
function hlGroups(gids){clearHl();if(!gids.length)return 0;svg.classList.add('focus');var c=0;
 cur.querySelectorAll('.node').forEach(function(n){var gs=n.dataset.groups.split(' ');
  if(gids.some(function(g){return gs.indexOf(String(g))>=0;})){n.classList.add('hl');c++;}});
 gids.forEach(function(g){var li=document.querySelector('.grp[data-gid="'+g+'"]');if(li)li.classList.add('sel');});return c;}
svg.addEventListener('click',function(e){if(drag&&drag.moved)return;var n=nodeOf(e.target);
 if(!n){pinned=null;tip.hidden=true;tip.classList.remove('pinned');clearHl();return;}
 pinned=n;showTip(n,e);tip.classList.add('pinned');var gs=n.dataset.groups?n.dataset.groups.split(' '):[];hlGroups(gs);n.classList.add('hl');
 var first=gs.length&&document.querySelector('.grp[data-gid="'+gs[0]+'"]');if(first)first.scrollIntoView({block:'nearest'});});
document.getElementById('groups').addEventListener('click',function(e){var li=e.target.closest('.grp');if(!li)return;
 var c=hlGroups([li.dataset.gid]);hits.textContent=c+' nodes';var f=cur.querySelector('.node.hl');if(f)center(f);});
document.getElementById('onlyblocked').addEventListener('change',function(e){document.getElementById('groups').classList.toggle('onlyblocked',e.target.checked);});
var matches=[],mi=0;
function doSearch(){var q=search.value.trim().toLowerCase();cur.querySelectorAll('.match').forEach(function(x){x.classList.remove('match');});
 matches=[];mi=0;if(!q){hits.textContent='';return;}
 cur.querySelectorAll('.node').forEach(function(n){if((n.dataset.modules+' '+n.dataset.id).toLowerCase().indexOf(q)>=0){n.classList.add('match');matches.push(n);}});
 hits.textContent=matches.length+' found';if(matches.length)center(matches[0]);}
search.addEventListener('input',doSearch);
search.addEventListener('keydown',function(e){if(e.key==='Enter'&&matches.length){mi=(mi+1)%matches.length;center(matches[mi]);hits.textContent=(mi+1)+'/'+matches.length;}});
document.getElementById('fit').addEventListener('click',fit);
window.addEventListener('keydown',function(e){if(e.target===search)return;if(e.key==='f')fit();if(e.key==='Escape'){clearHl();pinned=null;tip.hidden=true;}});
var tg=document.getElementById('toggle');
if(tg)tg.addEventListener('click',function(){var full=document.getElementById('view-full'),main=document.getElementById('view-main');
 var toFull=cur===main;main.style.display=toFull?'none':'';full.style.display=toFull?'':'none';cur=toFull?full:main;
 tg.textContent=toFull?'collapse repeats':'expand all';clearHl();doSearch();fit();});
window.addEventListener('resize',fit);fit();
})();
"""
