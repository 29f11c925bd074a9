"""The support graph's tool node: the prebuilt `ToolNode`, with a single tool call run on the calling thread.

The prebuilt node runs every step's calls on a new thread pool, so each step starts a thread and waits for it:
about 0.6 ms of CPU per step here, half the cost of a minimal graph step that calls a tool directly
(`bench/RESULTS.md`). The support agent almost always makes one call per step. That call now runs inline, in a
copy of the current context as the pool would run it, through the prebuilt node's own `_run_one`: argument
validation, injection, error handling and `Command` results are unchanged. A step with several calls takes the
prebuilt path and runs them in parallel.

It overrides the prebuilt node's private `_func` and calls its private `_parse_input`, `_extract_state`, `_run_one`
and `_combine_tool_outputs`, so `langgraph-prebuilt` is pinned to one minor release in `pyproject.toml`;
`tests/test_tool_node.py` checks it against the prebuilt node before a pin moves.
"""

from __future__ import annotations

import contextvars
from typing import Any

from langchain_core.messages import AnyMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import get_config_list
from langgraph.prebuilt import ToolNode, ToolRuntime
from langgraph.runtime import Runtime
from pydantic import BaseModel


class InlineToolNode(ToolNode):
    """`ToolNode` that runs a step's only tool call without a thread pool."""

    def _func(
        self, input: list[AnyMessage] | dict[str, Any] | BaseModel, config: RunnableConfig, runtime: Runtime[Any]
    ) -> Any:
        tool_calls, input_type = self._parse_input(input)
        if len(tool_calls) != 1:
            return super()._func(input, config, runtime)
        call, call_config = tool_calls[0], get_config_list(config, 1)[0]
        tool_runtime: Any = ToolRuntime(
            state=self._extract_state(input, call_config),
            tool_call_id=call["id"],
            config=call_config,
            context=runtime.context,
            store=runtime.store,
            stream_writer=runtime.stream_writer,
            tools=list(self.tools_by_name.values()),
            execution_info=runtime.execution_info,
            server_info=runtime.server_info,
        )
        output = contextvars.copy_context().run(self._run_one, call, input_type, tool_runtime)
        return self._combine_tool_outputs([output], input_type)
