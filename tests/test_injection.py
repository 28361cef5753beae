"""Nothing in a param's value ever runs: whatever filter or expression made it, it reaches the
shell as one quoted word, and a placeholder where quoting cannot hold is refused before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import hyperctl, read_stdout, write_json

PAYLOADS = {"nl": "a\ntouch {p}\n", "sub": "$(touch {p})", "tick": "`touch {p}`';touch {p};'"}

# Each expression renders the payload (or a value holding it); the job prints what it got.
EXPRESSIONS = {
    "plain": ("{{ x }}", "{x}"),
    "e": ("{{ x|e }}", "{x}"),
    "escape": ("{{ x|escape }}", "{x}"),
    "forceescape": ("{{ x|forceescape }}", "{x}"),
    "safe": ("{{ x|safe }}", "{x}"),
    "string": ("{{ x|string }}", "{x}"),
    "concat": ("{{ 'v=' ~ x }}", "v={x}"),
    "join": ("{{ [x, x]|join('-') }}", "{x}-{x}"),
    "format": ("{{ '%s!'|format(x) }}", "{x}!"),
    "set": ("{% set y = x %}{{ y }}", "{x}"),
    "item": ("{{ d['k'] }}", "{x}"),
    "attr": ("{{ d.k }}", "{x}"),
    "index": ("{{ l[0] }}", "{x}"),
    "upper-safe": ("{{ (x|safe)|upper|e }}", "{X}"),
    "after-equals": ("--tag={{ x }}", "--tag={x}"),
    "in-substitution": ('"$(printf %s {{ x }}.)"', "{x}."),
    "after-heredoc": ('"$(cat <<\'EOF\'\nit\'s "here"\nEOF\n)"{{ x }}', 'it\'s "here"{x}'),
    "after-shift": ('"$(( 1 << 2 ))"\nprintf %s {{ x }}', "4{x}"),
    "after-comment": ("'' # it's fine\nprintf %s {{ x }}", "{x}"),
}


@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_no_filter_or_expression_lets_a_value_run(tmp_path: Path, batches: Path, payload: str) -> None:
    marker = tmp_path / "p"
    x = PAYLOADS[payload].format(p=marker)
    jobs = [
        {
            "name": name,
            "params": {"x": x, "d": {"k": x}, "l": [x]},
            "execution": {"command": f"printf %s {expression}"},
        }
        for name, (expression, _) in EXPRESSIONS.items()
    ]
    jobs.append(  # a macro's output is quoted once more as a whole: never less
        {
            "name": "macro",
            "params": {"x": x},
            "execution": {"command": "{% macro m(v) %}{{ v }}{% endmacro %}printf %s {{ m(x) }}"},
        }
    )
    config = write_json(tmp_path / "b.json", {"name": "inj", "jobs": jobs})
    result = hyperctl("run", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert not marker.exists()
    for name, (_, expected) in EXPRESSIONS.items():
        assert read_stdout(batches, "inj", name) == expected.format(x=x, X=x.upper()), name
    assert marker.name in read_stdout(batches, "inj", "macro")


@pytest.mark.parametrize(
    ("command", "where"),
    [
        ('echo "{{ x }}"', "inside double quotes"),
        ("echo '{{ x }}'", "inside single quotes"),
        ('echo "a \\" {{ x }} b"', "inside double quotes"),  # an escaped quote closes nothing
        ('echo "${V:-{{ x }}}"', "inside double quotes"),
        ("echo $'{{ x }}'", "inside $'...' quotes"),
        ("cat <<EOF\nvalue: {{ x }}\nEOF", "inside a heredoc"),
        ("cat <<-'END'\n\t{{ x }}\n\tEND", "inside a heredoc"),
        ("echo `echo {{ x }}`", "inside backquotes"),
        ("echo \\{{ x }}", "right after a backslash"),
        ('echo "$(echo "{{ x }}")"', "inside double quotes"),
        ("{% for i in [1] %}echo '{{ x }}'{% endfor %}", "inside single quotes"),
        ('true # {{ x|upper }} in a comment\necho "{{ x }}"', "inside double quotes"),
        ("cat <<{{ x }} | wc\nhi\n", "a heredoc's delimiter"),
    ],
)
def test_a_placeholder_inside_quotes_or_a_heredoc_is_refused(
    tmp_path: Path, batches: Path, command: str, where: str
) -> None:
    marker = tmp_path / "p"
    params = {"x": f"$(touch {marker})"}
    jobs = [{"params": params, "execution": {"command": "true"}}, {"params": params, "execution": {"command": command}}]
    config = write_json(tmp_path / "b.json", {"jobs": jobs})
    result = hyperctl("run", "--config", str(config))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"hyperctl: error: jobs[1].execution.command: {{{{ x }}}} is {where}")
    if "quotes" in where and "backquotes" not in where:
        assert lines[0].endswith("write {{ x }} without quotes: hyperctl quotes it")
    assert not marker.exists()
    assert not batches.exists() or not any(batches.iterdir())


def test_a_template_with_a_quoted_placeholder_is_refused_by_generate(tmp_path: Path) -> None:
    template = tmp_path / "t.yml"
    template.write_text("params: {x: [a]}\nexecution: {command: 'echo \"{{ x }}\"'}\n")
    result = hyperctl("generate", "--template", str(template), "--output", "-")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "hyperctl: error: execution.command: {{ x }} is inside double quotes: "
        "write {{ x }} without quotes: hyperctl quotes it"
    )
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("{% filter replace(\"'\", '') %}echo {{ x }}{% endfilter %}", "{% filter %} blocks cannot be used"),
        ("{% autoescape true %}echo {{ x }}{% endautoescape %}", "{% autoescape %} blocks cannot be used"),
        ("echo {{ x|xmlattr }}", "template: 'str' object has no attribute 'items'"),
    ],
)
def test_blocks_that_would_undo_the_quoting_are_refused(
    tmp_path: Path, batches: Path, command: str, message: str
) -> None:
    marker = tmp_path / "p"
    params = {"x": f"$(touch {marker})"}
    config = write_json(tmp_path / "b.json", {"jobs": [{"params": params, "execution": {"command": command}}]})
    result = hyperctl("run", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.startswith(f"hyperctl: error: jobs[0].execution.command: {message}")
    assert len(result.stderr.splitlines()) == 1
    assert not marker.exists()


ARITHMETIC = [
    "echo $(( {{ x }} + 1 ))",  # sh too: $(( )) expands $(...) inside quotes
    "(( {{ x }} > 1 ))",
    "[[ {{ x }} -eq 1 ]]",
    "let n={{ x }}",
    "declare -i n={{ x }}",
    "a=(1 2); echo ${a[{{ x }}]}",
]


@pytest.mark.parametrize("command", ARITHMETIC)
def test_a_value_the_shell_reads_as_arithmetic_must_be_a_number(tmp_path: Path, batches: Path, command: str) -> None:
    marker = tmp_path / "p"
    job = {"params": {"x": f"a[$(touch {marker})]"}, "execution": {"command": command, "shell": "bash"}}
    result = hyperctl("run", "--config", str(write_json(tmp_path / "b.json", {"jobs": [job]})))
    assert result.returncode == 2
    assert result.stderr.startswith("hyperctl: error: jobs[0].execution.command: template: 'a[$(touch ")
    assert "stands where the shell reads arithmetic" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert not marker.exists()


def test_numbers_in_arithmetic_run(tmp_path: Path, batches: Path) -> None:
    command = "echo $(( {{ n }} + 1 )); (( {{ n }} > 1 )) && [[ {{ s }} -eq 7 ]] && echo yes; echo {{ name }}"
    params = {"n": 5, "s": "7", "name": "a[$(id)]"}
    job = {"name": "arith", "params": params, "execution": {"command": command, "shell": "bash"}}
    result = hyperctl("run", "--config", str(write_json(tmp_path / "b.json", {"name": "ar", "jobs": [job]})))
    assert result.returncode == 0, result.stderr
    assert read_stdout(batches, "ar", "arith") == "6\nyes\na[$(id)]\n"
