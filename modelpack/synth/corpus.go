package synth

// corpus is the English text the tokenizer's merges are learned from. It
// is plain, varied prose so that common words, spaces before words,
// punctuation, digits and contractions all get merges, as in a real
// tokenizer.
const corpus = `The small model reads a sentence, one token at a time, and guesses the next one.
It was not trained on anything; its weights are random numbers drawn from a seeded generator.
Still, the shapes are right, the names are right, and every layer does the work it would do in a real model.

Once upon a time there was a little town by the river. The people who lived there were farmers and bakers,
teachers and builders, and they met every morning in the market square. They talked about the weather,
the price of bread, and the news from the city over the hills. In the summer the days were long and warm;
in the winter the river froze and the children skated on the ice until the sun went down.

"What are you doing today?" asked the baker. "I'm going to the mill," said the farmer, "and then I'll
come back before it rains." They didn't know that the storm would last for three days and three nights.
When it was over, the bridge was gone, and the whole town worked together to build a new one.

Numbers matter too: 1, 2, 3, 10, 42, 100, 256, 512, 1024 and 2048 appear in programs and in prose alike.
In 1969 people walked on the moon; in 2024 a computer could write a letter, translate a page, or answer a question.
The year has 365 days, the day has 24 hours, and an hour has 60 minutes.

A good machine learning system is tested from the bottom up. First the file format is read and checked,
then the configuration is parsed, then the weights are loaded, and finally the whole network runs
and its output is compared with what we expect. If something is wrong, the error should say which file,
which tensor, and which value caused the problem, so that the person reading it can fix it quickly.

She said that she would write the report herself. He thought about it for a while and then agreed.
We should have known better; you'll see that they're right, and it's never too late to learn something new.
Where is the station? How long does the train take? Which way should we go when we reach the end of the road?

Language is full of patterns: the most common words are short, like the, of, and, to, in, is, it, that, was and for.
Longer words such as understanding, information, development, international and responsibility are built from parts.
A tokenizer learns these parts by merging the most frequent pairs of symbols, again and again, until its vocabulary is full.
`
