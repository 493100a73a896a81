"""Posterior diagnostics: did inference work?"""
