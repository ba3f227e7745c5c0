"""The key every test uses: distinctive, so a leak into logs, errors or files is easy to spot."""

TEST_KEY = "sk-grok-TEST-SECRET-7f3a9c2e"
