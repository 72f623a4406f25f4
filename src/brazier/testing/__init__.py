"""brazier.testing"""
