"""The self-contained HTML report of a suite run: per suite, per evaluator, per scenario; failures with their
transcript and tool trail. Inline CSS, no external assets, every value escaped (Jinja2 autoescape)."""

from __future__ import annotations

import json
from typing import Any

from jinja2 import Environment, select_autoescape

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Threadline evaluation report</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#1d232a;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ccd}h3{font-size:1rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #d5d9e0;padding:.25rem .6rem;text-align:left}
.pass{color:#146c2e;font-weight:600}.fail{color:#b3261e;font-weight:600}.skip{color:#6b7280}
details{margin:.4rem 0;border:1px solid #e3e6eb;border-radius:6px;padding:.3rem .7rem}
summary{cursor:pointer}.turn{margin:.5rem 0;padding:.4rem .6rem;background:#f6f7f9;border-radius:6px}
.who{font-weight:600}pre{white-space:pre-wrap;word-break:break-word;background:#fff;border:1px solid #e3e6eb;
padding:.3rem .5rem;margin:.2rem 0;font-size:12px}
</style></head><body>
<h1>Threadline evaluation report</h1>
<p>Overall: {% if data.passed %}<span class="pass">PASSED</span>{% else %}<span class="fail">FAILED</span>{% endif %}
· {{ data.suites|length }} suite(s)</p>
<table><tr><th>suite</th><th>model</th><th>trials</th><th>pass^k</th><th>threshold</th><th>verdict</th></tr>
{% for s in data.suites %}<tr><td><a href="#{{ s.suite }}">{{ s.suite }}</a></td><td>{{ s.model }}</td>
<td>{{ s.trials }}</td><td>{{ "%.3f"|format(s.pass_k) }}</td><td>{{ "%.2f"|format(s.thresholds.pass_rate) }}</td>
<td>{% if s.passed %}<span class="pass">pass</span>{% else %}<span class="fail">fail</span>{% endif %}</td></tr>
{% endfor %}</table>
{% for s in data.suites %}
<h2 id="{{ s.suite }}">{{ s.suite }}</h2>
{% if s.shortfalls %}<p class="fail">Below threshold: {{ s.shortfalls|join("; ") }}</p>{% endif %}
<table><tr><th>evaluator</th><th>score</th></tr>
{% for name, score in s.scores.items() %}<tr><td>{{ name }}</td><td>{{ "%.3f"|format(score) }}</td></tr>{% endfor %}
</table>
<table><tr><th>scenario</th><th>pass^k</th><th>trials passed</th></tr>
{% for sc in s.scenarios %}<tr><td>{{ sc.id }}</td>
<td>{% if sc.pass_k %}<span class="pass">pass</span>{% else %}<span class="fail">fail</span>{% endif %}</td>
<td>{{ "%.2f"|format(sc.trial_pass_rate) }}</td></tr>{% endfor %}</table>
{% for sc in s.scenarios %}{% for run in sc.runs if not run.passed %}
<details open><summary class="fail">{{ sc.id }} · trial {{ run.trial + 1 }} failed</summary>
<p>{{ sc.description }}</p>
<ul>{% for c in run.checks if not c.passed %}<li><b>{{ c.evaluator }}</b>
{% if c.turn is not none %}(turn {{ c.turn + 1 }}){% endif %}: {{ c.detail }}</li>{% endfor %}</ul>
{% for t in run.transcript %}<div class="turn"><div><span class="who">{{ loop.index }}. customer</span>
· {{ t.channel }} · {{ t.sender }} · {{ t.at }}</div><pre>{{ t.text }}</pre>
{% for tool in t.tools %}<div>tool <b>{{ tool.name }}</b> <code>{{ tool.args|tojson }}</code></div>
{% if tool.result %}<pre>{{ tool.result }}</pre>{% endif %}{% endfor %}
<div><span class="who">reply</span> (owner {{ t.owner }}{% if t.error %}, refused: {{ t.error }}{% endif %})</div>
<pre>{{ t.reply if t.reply is not none else "(no reply)" }}</pre>
{% if t.packet %}<details><summary>handoff packet</summary><pre>{{ t.packet|tojson(indent=2) }}</pre></details>
{% endif %}</div>{% endfor %}
</details>{% endfor %}{% endfor %}
{% endfor %}
</body></html>
"""


def render_html(data: dict[str, Any]) -> str:
    """The report page for a run summary (`evals.runner.summary`)."""
    environment = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    # Round-trip through JSON so the template sees plain values only.
    return environment.from_string(TEMPLATE).render(data=json.loads(json.dumps(data, default=str)))
