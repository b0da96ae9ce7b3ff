"""The Gradio demo: upload a clip, see the aligned face, its Décalcomanie views and the OLR verdict.

Imports :mod:`inference` only.
"""
