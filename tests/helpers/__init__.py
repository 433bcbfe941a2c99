"""Plain helpers shared by test modules (stand-ins, builders); fixtures live in conftest.py and tests/fixtures/."""
