"""The project's copy of the contract's examples (tests/support/contract.py) is the contract's.

The contract is ``../shared/seed/async_job_save.README.md`` beside the checkout, which a clone
does not have: then these tests skip, saying so, and the examples still run from the copy.
"""

from __future__ import annotations

from tests.support.contract import BASIC, EXAMPLES, IDEMPOTENT, OCI, contract_examples, needs_contract


@needs_contract
def test_the_contract_has_the_three_examples():
    assert {BASIC, OCI, IDEMPOTENT} <= set(contract_examples())


@needs_contract
def test_the_project_copy_is_the_contract_examples_as_written():
    examples = contract_examples()
    for heading, plays in EXAMPLES.items():
        assert plays == examples[heading], heading
