from brazier.entry import main

main()
