"""Train the embedded tiny-facts-2 model: reproduces the shipped checkpoint bit for bit.

The training code lives with the model, in `interp/embedded/tiny_facts_2/train.py`; see its docstring.
A stopped run resumes from `weights/checkpoint.pt` when started again with the same arguments.
"""

from interp.embedded.tiny_facts_2.train import main

if __name__ == "__main__":
    main()
