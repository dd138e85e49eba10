"""seqtune tools: what the tools do, as plain typed Python callable without MCP."""
