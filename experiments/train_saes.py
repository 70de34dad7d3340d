"""Train the dictionaries shipped with tiny-facts (a residual SAE and an MLP transcoder at its fact layer).

The training code lives with the model, in `interp/embedded/tiny_facts/train_saes.py`; see its docstring.
"""

from interp.embedded.tiny_facts.train_saes import main

if __name__ == "__main__":
    main()
