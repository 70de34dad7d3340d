"""Train the embedded tiny-facts model: reproduces the shipped checkpoint bit for bit.

The training code lives with the model, in `interp/embedded/tiny_facts/train.py`; see its docstring.
"""

from interp.embedded.tiny_facts.train import main

if __name__ == "__main__":
    main()
