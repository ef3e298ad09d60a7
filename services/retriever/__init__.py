"""The retriever: few-shot examples from the project database."""
