"""brazier.cli"""
