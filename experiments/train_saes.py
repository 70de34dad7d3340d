"""Train the dictionaries shipped with an embedded model (a residual SAE and an MLP transcoder at its fact
layer): `--model tiny-facts | tiny-facts-2`, default the default embedded model.

The pipeline lives in `interp/embedded/train_saes.py`, each model's plan beside it in
`interp/embedded/<model>/train_saes.py`; see their docstrings.
"""

from interp.embedded.train_saes import main

if __name__ == "__main__":
    main()
