#!/usr/bin/env python3
"""Run symgrad's command line from a checkout: python cli.py jacobian "x**2" --wrt x"""
from symgrad.cli import main

if __name__ == "__main__":
    main()
