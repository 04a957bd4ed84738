"""Vocabulary and templates for bench/retrieval_data.py (see its docstring for the design).

Value pools are "|"-separated strings (one line of source each, so the lists stay short); a
conversation draws every value without replacement, so no value names two facts in one
conversation. Templates use ``{rel}`` (a relation word), ``{name}`` (a first name), ``{v}`` (the
value), ``{av}`` (the value with "a"/"an") and, for multi-hop, ``{who}`` (a clause that identifies
a relative: "lives in Lyon"). Also here: what counts as a content word (paraphrase questions
share at most one with their evidence) and the days each relative time expression names.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from random import Random


def _split(text: str) -> list[str]:
    return [w.strip() for w in text.split("|") if w.strip()]


FEMALE = _split(
    "Anna|Mia|Clara|Nora|Iris|Lena|Ada|Ruth|Sofia|Elsa|Greta|Vera|Lucia|Hannah|Ines|Yara|Alma|"
    "Selma|Freya|Maren|Noemi|Lotte|Zoe|Rosa|Astrid|Helga|Petra|Maya|Olga|Priya|Chiara|Edith|"
    "Signe|Leila|Mira|Ilse|Nadia|Tessa|Wanda|Beatrix|Dagny|Fiona|Hedda|Linnea|Nina|Orla|Pilar|"
    "Saskia|Tilda|Valentina|Xenia|Zora|Agnes|Celine|Elodie|Gemma|Isolde|Kira|Nell|Paloma|Ronja|"
    "Simone|Thea|Vivian|Ximena|Yvonne|Bianca|Delia|Flora"
)
MALE = _split(
    "Tom|Leo|Theo|Felix|Hugo|Oscar|Max|Ivan|Paul|Omar|Nils|Jonas|Emil|Marco|Pavel|Bruno|Rafael|"
    "Dario|Tariq|Caleb|Aaron|Milan|Gideon|Kenji|Diego|Amir|Lukas|Sven|Matteo|Jakob|Farid|Ruben|"
    "Tobias|Anton|Casper|Quentin|Viktor|Yusuf|Cyril|Esteban|Gustav|Ibrahim|Kasimir|Mateo|Rasmus|"
    "Ulrich|Wim|Yannick|Bastian|Dmitri|Fabian|Henrik|Jasper|Lorenzo|Magnus|Otto|Umberto|Walter|"
    "Zeno|Conrad|Elias"
)
NAMES = FEMALE + MALE
USERS = _split("Sam|Alex|Jordan|Robin|Kim|Morgan|Charlie|Jamie|Riley|Avery|Taylor|Casey")
# relation words a conversation may use; those it never uses make unanswerable questions
RELS = _split(
    "sister|brother|cousin|aunt|uncle|niece|nephew|neighbour|colleague|friend|roommate|"
    "teammate|classmate|godmother|grandfather|brother-in-law|sister-in-law|stepbrother"
)
FEMALE_RELS = {"sister", "aunt", "niece", "godmother", "sister-in-law"}
MALE_RELS = {"brother", "uncle", "nephew", "grandfather", "brother-in-law", "stepbrother"}
CITIES = _split(
    "Lyon|Porto|Denver|Austin|Lisbon|Oslo|Kyoto|Nairobi|Hamburg|Quito|Seville|Bergen|Krakow|"
    "Valencia|Dublin|Glasgow|Leipzig|Turin|Utrecht|Ghent|Tallinn|Riga|Vilnius|Zagreb|Ljubljana|"
    "Graz|Basel|Bilbao|Malaga|Naples|Palermo|Bologna|Genoa|Marseille|Nantes|Bordeaux|Toulouse|"
    "Antwerp|Aarhus|Malmo|Tampere|Gdansk|Brno|Cluj|Thessaloniki|Izmir|Tbilisi|Yerevan|Haifa|"
    "Casablanca|Accra|Durban|Perth|Adelaide|Auckland|Wellington|Osaka|Busan|Hanoi|Cebu|Pune|"
    "Montreal|Halifax|Calgary|Portland|Tucson|Memphis|Boise|Omaha|Raleigh|Savannah|Cordoba|"
    "Rosario|Medellin|Cusco|Valparaiso|Recife|Curitiba|Oaxaca|Merida"
)
JOBS = _split(
    "nurse|dentist|architect|pilot|carpenter|baker|chemist|librarian|firefighter|electrician|"
    "plumber|journalist|veterinarian|pharmacist|paramedic|translator|accountant|surveyor|"
    "geologist|midwife|optician|sommelier|tailor|locksmith|florist|butcher|welder|"
    "physiotherapist|radiographer|zookeeper|lifeguard|meteorologist|cartographer|"
    "audiologist|stonemason|glassblower|beekeeper|park ranger|court reporter|"
    "air traffic controller|"
    "urban planner|data analyst|game designer|tour guide|dietitian|speech therapist|"
    "sound engineer|landscape gardener|museum curator|flight attendant|primary school teacher|"
    "marine biologist|crane operator|bookbinder|piano tuner|social worker"
)
HOBBIES = _split(
    "pottery|bouldering|birdwatching|salsa dancing|woodcarving|calligraphy|beekeeping|fencing|"
    "sourdough baking|kayaking|origami|chess|knitting|archery|geocaching|stand-up paddling|"
    "astronomy|ceramics|bonsai|fly fishing|juggling|mosaic making|rowing|stamp collecting|"
    "trail running|watercolour painting|embroidery|sailing|falconry|kite surfing|pilates|"
    "ballroom dancing|film photography|rock tumbling|skateboarding|foraging|candle making"
)
INSTRUMENTS = _split(
    "cello|trumpet|banjo|harp|flute|accordion|clarinet|oboe|bassoon|ukulele|mandolin|viola|"
    "saxophone|trombone|harmonica|double bass|bagpipes|sitar|xylophone|french horn|tuba|zither"
)
SPECIES = _split("cat|dog|parrot|tortoise|rabbit|hamster|ferret|gecko|guinea pig|cockatiel")
PET_NAMES = _split(
    "Biscuit|Pepper|Mochi|Ziggy|Noodle|Waffles|Pickle|Juniper|Clementine|Rocket|Pumpkin|"
    "Marble|Tofu|Gizmo|Olive|Sprout|Bingo|Nacho|Peanut|Cosmo|Tinker|Fudge|Maple|Pixel|Dumpling|"
    "Bramble|Comet|Figaro|Hazel|Kiwi|Lentil|Muffin|Nutmeg|Oreo|Pesto|Quokka|Radish|Saffron|"
    "Truffle|Velvet|Wasabi|Yoyo|Zucchini|Crumpet|Basil|Chutney|Dotty|Ember"
)
CARS = _split(
    "Volvo XC40|Toyota Corolla|Honda Civic|Mazda MX-5|Skoda Octavia|Kia Niro|Ford Fiesta|"
    "Subaru Outback|Fiat Panda|Renault Clio|Tesla Model 3|Nissan Leaf|VW Golf|Peugeot 208|"
    "Hyundai Kona|Mini Cooper|Audi A4|BMW i3|Dacia Duster|Citroen C3|Seat Ibiza|Jeep Renegade|"
    "Suzuki Swift|Opel Corsa|Polestar 2|Volvo V60|Toyota Prius|Honda Jazz|Mazda CX-5|Kia Picanto"
)
COMPANIES = _split(
    "Northwind|Bluefin Labs|Crescent Bank|Ironleaf|Solvana|Tidewater Logistics|Kestrel Media|"
    "Orchard Health|Brightpath|Copperline|Lumen Works|Harbor Freight Co|Silverpine|Quarry Tech|"
    "Mosaic Insurance|Redwood Analytics|Pinecrest|Atlas Robotics|Greenhouse Foods|Vantage Air|"
    "Driftwood Studios|Summit Energy|Cobalt Systems|Fernhill|Granite Partners|Juniper Labs|"
    "Larkspur|Meridian Rail|Nimbus Cloud|Oakridge Pharma|Polaris Maps|Riverstone|Saffron Retail|"
    "Thistle Games|Umbra Security|Verdant Farms|Willow Books|Zephyr Motors|Alder Design|Beacon Law"
)
PHONES = _split(
    "iPhone 15|Pixel 8|Galaxy S24|Fairphone 5|Nothing Phone 2|OnePlus 12|Xperia 5|Moto Edge|"
    "iPhone 13 mini|Pixel 7a|Galaxy A54|Nokia X30"
)
LAPTOPS = _split(
    "ThinkPad X1|MacBook Air|Dell XPS 13|Framework 13|Surface Laptop|HP Spectre|Asus Zenbook|"
    "MacBook Pro|Acer Swift|Lenovo Yoga"
)
FOODS = _split(
    "ramen|lasagne|pad thai|paella|pierogi|shakshuka|bibimbap|moussaka|tacos al pastor|"
    "butter chicken|pho|risotto|falafel|goulash|sushi|enchiladas|dumplings|gnocchi|laksa|"
    "jollof rice|poutine|ceviche|katsu curry|spanakopita"
)
GYM_DAYS = _split(
    "Mondays and Thursdays|Tuesdays and Fridays|Wednesdays and Saturdays|weekday mornings|"
    "Sunday evenings|Mondays, Wednesdays and Fridays|Tuesday and Thursday evenings|weekends"
)
COFFEES = _split(
    "oat flat white|double espresso|iced americano|cortado|chai latte|macchiato|cappuccino with "
    "cinnamon|cold brew|decaf latte|mocha|filter coffee with milk|lungo"
)
COMMUTES = _split("bike|train|bus|tram|scooter|ferry|car pool|motorbike")
RUN_KM = _split("5|7|8|10|12|15|18|21")
BEDTIMES = _split("10 pm|10:30 pm|11 pm|11:30 pm|midnight|half past twelve|9:30 pm")
TRAILS = _split(
    "Eagle Ridge|Fox Hollow|Bear Lake|Pine Bluff|Granite Falls|Cedar Creek|Misty Peak|Owl Canyon|"
    "Silver Lake|Hawk Point|Elk Meadow|Raven Cliff|Sunset Ridge|Wolf Gap|Maple Gorge|Heron Marsh|"
    "Lupine Hill|Thunder Rock|Crystal Springs|Badger Hollow|Juniper Ridge|Larch Valley|Osprey Cove"
)
RESTAURANTS = _split(
    "Casa Lupo|The Green Fig|Saffron House|Little Kyoto|Bistro Marcel|Taqueria Sol|The Oak Room|"
    "Pho Saigon|Trattoria Nonna|Blue Anchor|Spice Route|Cafe Verde|The Copper Pot|Seoul Kitchen|"
    "Olive & Vine|The Salt Cellar|Mama Ngozi|Bodega Azul|Golden Lotus|The Hungry Heron|"
    "Chez Odette|Masala Garden|Nordic Table|Pizzeria Vesuvio|The Dumpling Den"
)
MOVIES = _split(
    "Dune Part Two|Past Lives|Oppenheimer|Poor Things|The Holdovers|Anatomy of a Fall|"
    "Perfect Days|The Zone of Interest|Barbie|Killers of the Flower Moon|Inside Out 2|Challengers|"
    "Civil War|Furiosa|Wicked|Conclave|The Wild Robot|Flow|Anora|Aftersun|Godzilla Minus One|"
    "The Boy and the Heron|Asteroid City|Spider-Verse"
)
BANDS = _split(
    "The National|Khruangbin|Fleet Foxes|Arctic Monkeys|Phoenix|Beach House|Wet Leg|Alvvays|"
    "Big Thief|Parcels|Vampire Weekend|The War on Drugs|Bon Iver|Hozier|Tame Impala|Fontaines DC|"
    "Idles|Japanese Breakfast|Mitski|Caribou|Bonobo|Jungle|Portishead|Sigur Ros"
)
MUSEUMS = _split(
    "the science museum|the maritime museum|the railway museum|the modern art gallery|"
    "the natural history museum|the design museum|the toy museum|the photography museum|"
    "the city history museum|the aviation museum|the folk art museum|the botanical museum|"
    "the textile museum|the computer museum|the glass museum|the clock museum|the coin museum|"
    "the film museum|the music museum|the map museum"
)
DISHES = _split(
    "mushroom risotto|chicken tagine|lentil dal|fish tacos|beef stew|vegetable lasagne|"
    "shrimp paella|pumpkin soup|stuffed peppers|lamb kofta|miso salmon|chili con carne|"
    "spinach gnocchi|thai green curry|roast chicken|cauliflower steaks|pork dumplings|"
    "tomato galette|mac and cheese|coq au vin|ratatouille|beef bulgogi"
)
MARKET_ITEMS = _split(
    "a brass lamp|a vintage camera|an old typewriter|a wooden chess set|a copper kettle|"
    "a stack of vinyl records|a rattan chair|a ceramic vase|a cuckoo clock|a leather satchel|"
    "a globe|a pair of binoculars|a mirror with a gilt frame|a tin toy robot|a quilt|"
    "a set of crystal glasses|a sewing box|an oil painting of a harbour|a rocking horse|a barometer"
)
KID_ACTIVITIES = _split(
    "school|swimming lessons|kindergarten|piano lessons|a judo class|a coding club|ballet|"
    "a drama club|a chess club|scouts|a football academy|violin lessons"
)
SHOPS = _split(
    "bakery|bike repair shop|bookshop|flower shop|barber shop|wine bar|cheese shop|tattoo studio|"
    "vintage clothing store|record shop|yoga studio|ice cream parlour|pet grooming salon|deli"
)
SPORTS = _split(
    "volleyball|handball|water polo|hockey|rugby|basketball|lacrosse|netball|badminton|cricket"
)
MONTH_DAYS = [
    f"{m} {d}"
    for m in ("March", "June", "August", "October", "December")
    for d in (3, 9, 14, 21, 27)
]
BOOKS = _split(
    "Middlemarch|The Overstory|Piranesi|Stoner|Pachinko|Klara and the Sun|The Remains of the Day|"
    "Station Eleven|A Gentleman in Moscow|Circe|Lonesome Dove|The Goldfinch|Normal People|"
    "Hamnet|The Night Watchman|Shuggie Bain|Demon Copperhead|Tomorrow, and Tomorrow"
)
COUNTRIES = _split(
    "Japan|Peru|Iceland|Vietnam|Morocco|Chile|Norway|Portugal|Georgia|Kenya|New Zealand|Mexico|"
    "Canada|Greece|Jordan|Colombia|Namibia|Scotland|Slovenia|Sri Lanka"
)
ALLERGENS = _split("penicillin|shellfish|peanuts|latex|bee stings|sesame|kiwi fruit|dust mites")
LANGUAGES = _split(
    "Portuguese|Japanese|Greek|Swahili|Polish|Korean|Turkish|Italian|Dutch|Finnish|Arabic|Hindi"
)
PLANTS = _split(
    "tomatoes|sunflowers|raspberries|lavender|potatoes|courgettes|strawberries|dahlias|"
    "runner beans|garlic|rhubarb|tulips"
)
UNIVERSITIES = _split(
    "Edinburgh|Leiden|Bologna|McGill|Uppsala|Heidelberg|Trinity College|Sciences Po|"
    "Kyoto University|ETH Zurich|Melbourne|Queen's University"
)
BONES = _split("wrist|collarbone|ankle|left arm|little finger|two ribs|right thumb|kneecap")
NUMBERS = [str(n) for n in range(12, 99)]
FLOORS = _split("second|third|fourth|fifth|sixth|seventh|eighth|ninth|eleventh")
TATTOOS = _split("a swallow|a compass|a fern|an anchor|a moth|a lighthouse|a fox|a wave")
HIDING = _split("the doormat|a flower pot|the garden gnome|a loose brick|the mailbox")

POOLS: dict[str, list[str]] = {
    "names": NAMES, "cities": CITIES, "jobs": JOBS, "hobbies": HOBBIES,
    "instruments": INSTRUMENTS, "pets": PET_NAMES, "cars": CARS, "companies": COMPANIES,
    "phones": PHONES, "laptops": LAPTOPS, "foods": FOODS, "gym": GYM_DAYS, "coffees": COFFEES,
    "commutes": COMMUTES, "run": RUN_KM, "bedtimes": BEDTIMES, "trails": TRAILS,
    "restaurants": RESTAURANTS, "movies": MOVIES, "bands": BANDS, "museums": MUSEUMS,
    "dishes": DISHES, "market": MARKET_ITEMS, "activities": KID_ACTIVITIES, "shops": SHOPS,
    "sports": SPORTS, "birthdays": MONTH_DAYS, "books": BOOKS, "countries": COUNTRIES,
    "allergens": ALLERGENS, "languages": LANGUAGES, "plants": PLANTS, "unis": UNIVERSITIES,
    "bones": BONES, "numbers": NUMBERS, "floors": FLOORS, "tattoos": TATTOOS, "hiding": HIDING,
    "species": SPECIES,
}  # fmt: skip
BAKES = _split(
    "apple strudel|plum cake|cinnamon buns|honey cake|lemon tart|poppy seed roll|cheesecake|"
    "rye bread|almond biscuits|carrot cake"
)
WIFI = _split("otter42|maple77|bluejay19|comet88|tulip31|walrus56|pebble23|cactus64|falcon12")
RENTS = _split("950 euros|1,100 euros|1,250 euros|1,400 euros|875 euros|1,050 euros|1,320 euros")
PLATES = _split("KX 482 LT|BV 19 ROM|HT 734 QA|ZL 55 PEN|MD 208 KY|RW 611 FO|GJ 93 TIS")
MARATHONS = _split(
    "3 hours 58 minutes|4 hours 12 minutes|3 hours 41 minutes|4 hours 30 minutes|3 hours 29 minutes"
)
POOLS.update(
    {"bakes": BAKES, "wifi": WIFI, "rents": RENTS, "plates": PLATES, "marathons": MARATHONS}
)

# attribute: (pool, topic, statements, single-hop question, clause naming the relative or "")
PERSON_ATTRS: dict[str, tuple[str, str, list[str], str, str]] = {
    "job": ("jobs", "work", [
        "My {rel} {name} works as {av}.",
        "{name}, my {rel}, has been {av} for years.",
        "Did I mention that my {rel} {name} is {av}?",
        "My {rel} {name} trained as {av} and still loves it.",
    ], "What does my {rel} {name} do for a living?", "works as {av}"),
    "city": ("cities", "travel", [
        "My {rel} {name} lives in {v}.",
        "{name}, my {rel}, has a flat in {v}.",
        "My {rel} {name} is based in {v}, far from the rest of us.",
    ], "Which city does my {rel} {name} live in?", "lives in {v}"),
    "hobby": ("hobbies", "hobbies", [
        "My {rel} {name} has gotten really into {v}.",
        "{name}, my {rel}, spends every free weekend on {v}.",
        "My {rel} {name} can't stop talking about {v}.",
    ], "What hobby is my {rel} {name} into?", "is into {v}"),
    "instrument": ("instruments", "hobbies", [
        "My {rel} {name} plays the {v}.",
        "{name}, my {rel}, practises the {v} every evening.",
        "My {rel} {name} has played the {v} since school.",
    ], "Which instrument does my {rel} {name} play?", "plays the {v}"),
    "pet": ("pets", "pets", [
        "My {rel} {name} has {asp} called {v}.",
        "{name}, my {rel}, got {asp} and named it {v}.",
    ], "What is the name of my {rel} {name}'s pet?", ""),
    "birthday": ("birthdays", "family", [
        "My {rel} {name}'s birthday is on {v}.",
        "{name}, my {rel}, celebrates a birthday on {v}, I must not forget.",
    ], "When is my {rel} {name}'s birthday?", ""),
    "car": ("cars", "travel", [
        "My {rel} {name} drives a {v}.",
        "{name}, my {rel}, gets around in a {v}.",
    ], "What car does my {rel} {name} drive?", ""),
    "employer": ("companies", "work", [
        "My {rel} {name} works at {v}.",
        "{name}, my {rel}, has a job at {v}.",
    ], "Which company does my {rel} {name} work for?", ""),
}  # fmt: skip
PERSON_UPDATE_Q = {
    "city": "Where does my {rel} {name} live now?",
    "employer": "Which company does my {rel} {name} work for now?",
    "car": "What car does my {rel} {name} drive now?",
}
# the user's own single-hop facts: (pool, topic, statements, question)
USER_FACTS: list[tuple[str, str, list[str], str]] = [
    ("numbers", "health", ["My gym locker is number {v}, I always forget it.",
                           "Locker {v} at the gym is mine, easy to remember."],
     "What is my gym locker number?"),
    ("floors", "home", ["Our flat is on the {v} floor and there's no lift.",
                        "We live on the {v} floor of the building."],
     "Which floor is our flat on?"),
    ("numbers", "work", ["I take the number {v} bus to work.",
                         "The {v} bus gets me to the office every morning."],
     "Which bus number do I take to work?"),
    ("countries", "family", ["My parents were both born in {v}.",
                             "Mum and Dad grew up in {v} before they moved."],
     "Where were my parents born?"),
]  # fmt: skip
# second hop about a relative named {name}: (pool, topic, statements, question with {who})
HOPS: dict[str, tuple[str, str, list[str], str]] = {
    "kid": ("names", "family", [
        "{name}'s {kid} {v} just started {act}.",
        "{name} says little {v}, the {kid}, is obsessed with {act} now.",
    ], "What is the name of the {kid} of my {rel} who {who}?"),
    "pet": ("pets", "pets", [
        "{name} adopted {asp} and called it {v}.",
        "{name}'s new {sp} is named {v}, so cute.",
    ], "What is the name of the pet that my {rel} who {who} adopted?"),
    "move": ("cities", "travel", [
        "{name} is planning to move to {v} in the autumn.",
        "{name} wants to relocate to {v} next year.",
    ], "Where is my {rel} who {who} planning to move?"),
    "car": ("cars", "travel", [
        "{name} finally bought a {v}.",
        "{name} just picked up a used {v}.",
    ], "What car did my {rel} who {who} buy?"),
    "book": ("books", "hobbies", [
        "{name} keeps recommending {v} to me.",
        "{name} swears {v} is the best book ever written.",
    ], "Which book does my {rel} who {who} recommend?"),
}  # fmt: skip
PARTNER = ["{name} and {v} got married two years ago.", "{name}'s partner is called {v}."]
# third hop about the partner {name}: (pool, topic, statements, question with {who})
PARTNER_HOPS: dict[str, tuple[str, str, list[str], str]] = {
    "shop": ("shops", "work", ["{name} runs a {v} near the station.",
                               "{name} opened a small {v} downtown."],
             "What kind of business does the partner of my {rel} who {who} run?"),
    "sport": ("sports", "health", ["{name} coaches a {v} team on weekends.",
                                   "{name} trains the local {v} team twice a week."],
              "Which sport does the partner of my {rel} who {who} coach?"),
}  # fmt: skip
# the user's changing attributes: (pool, topic, statements for old and new alike, question)
UPDATES: dict[str, tuple[str, str, list[str], str]] = {
    "home": ("cities", "home", ["I live in {v} these days.", "Life in {v} suits me for now.",
                                "Home for me is {v} at the moment."],
             "Which city do I live in now?"),
    "employer": ("companies", "work", ["I work at {v} these days.", "My job at {v} keeps me busy.",
                                       "Things at {v}, where I work, are hectic."],
                 "Which company do I work for now?"),
    "job": ("jobs", "work", ["I work as {av} these days.", "Being {av} is my job at the moment."],
            "What is my job now?"),
    "car": ("cars", "travel", ["I drive a {v} these days.", "My car is a {v}, it does the job."],
            "What car do I drive now?"),
    "phone": ("phones", "home", ["My phone is a {v} at the moment.",
                                 "I'm using a {v} as my phone these days."],
              "Which phone am I using now?"),
    "laptop": ("laptops", "work", ["I do everything on a {v} these days.",
                                   "My laptop is a {v} right now."], "Which laptop do I use now?"),
    "food": ("foods", "food", ["My favourite food is {v} these days.",
                               "Honestly {v} is my favourite thing to eat at the moment."],
             "What is my favourite food now?"),
    "gym": ("gym", "health", ["I go to the gym on {v} these days.",
                              "My gym schedule is {v} at the moment."],
            "When do I go to the gym now?"),
    "coffee": ("coffees", "food", ["My usual coffee order is {av} these days.",
                                   "I always get {av} at the cafe lately."],
               "What is my usual coffee order now?"),
    "commute": ("commutes", "work", ["I get to work by {v} these days.",
                                     "My commute is by {v} at the moment."],
                "How do I get to work now?"),
    "run": ("run", "health", ["My Sunday run is {v} kilometres these days.",
                              "I run {v} km on Sundays at the moment."],
            "How far do I run on Sundays now?"),
    "bedtime": ("bedtimes", "health", ["I go to bed around {v} these days.",
                                       "Bedtime for me is about {v} at the moment."],
                "What time do I go to bed now?"),
}  # fmt: skip
# paraphrase facts: (pool, topic, statements, question sharing <= 1 content word with them)
PARAPHRASES: list[tuple[str, str, list[str], str]] = [
    ("pets", "pets", ["I adopted a beagle puppy named {v}.",
                      "We brought home a beagle puppy last month, {v} is his name."],
     "What did I call the young dog I took in?"),
    ("names", "family", ["My daughter's violin teacher is called {v}.",
                         "{v} teaches my daughter violin now."],
     "Who gives my kid lessons on the fiddle?"),
    ("countries", "travel", ["I'm saving up for a trip to {v} next summer.",
                             "Saving every penny for a holiday in {v} next summer."],
     "Which nation am I putting money aside to visit?"),
    ("allergens", "health", ["The doctor told me I'm allergic to {v}.",
                             "Turns out I'm allergic to {v}, according to my doctor."],
     "What substance did the physician say my body reacts badly to?"),
    ("books", "hobbies", ["I finally finished reading {v}.",
                          "Just got to the last page of {v}, what an ending."],
     "Which novel did I complete recently?"),
    ("wifi", "home", ["The wifi password at home is {v}.", "Our wifi password is {v}, by the way."],
     "What's the code for the wireless internet in our house?"),
    ("rents", "home", ["My landlord raised the rent to {v} a month.",
                       "The rent just went up to {v} a month, thanks landlord."],
     "How much does the property owner charge me for the apartment?"),
    ("languages", "hobbies", ["I signed up for a {v} course on Tuesdays.",
                              "Started evening classes in {v} every Tuesday."],
     "Which tongue am I studying in that weekly lesson?"),
    ("plants", "home", ["We're planting {v} in the backyard this year.",
                        "The backyard is getting a patch of {v} this spring."],
     "What are we growing in the garden behind the house?"),
    ("bakes", "food", ["My grandmother taught me to bake {v}.",
                       "Grandma showed me how to make her {v} years ago."],
     "Which recipe did granny pass down to me?"),
    ("bones", "health", ["I broke my {v} skiing last winter.",
                         "Skiing last winter ended with a broken {v}."],
     "Which part of my body did I fracture on the slopes?"),
    ("names", "hobbies", ["My favourite podcast is hosted by {v}.",
                          "The host of my favourite podcast is {v}."],
     "Who runs that audio show I love?"),
    ("names", "home", ["The plumber who fixed our sink was called {v}.",
                       "A plumber named {v} fixed our sink in the end."],
     "Who repaired the leaking basin in the kitchen?"),
    ("unis", "family", ["My nephew got into {v}.", "Big news: my nephew was accepted at {v}."],
     "Which college admitted my sibling's son?"),
    ("plates", "travel", ["My car's license plate is {v}.", "The plate on my car reads {v}."],
     "What's written on the registration tag of my vehicle?"),
    ("hiding", "home", ["I keep the spare key under {v}.", "The spare key lives under {v}."],
     "Where is the extra house key hidden?"),
    ("names", "work", ["My boss is called {v}.", "{v}, my boss, wants the report by Friday."],
     "Who is my manager at the office?"),
    ("tattoos", "hobbies", ["I got {v} tattooed on my shoulder.",
                            "My new tattoo is {v}, on the shoulder."],
     "What image did I get inked on my skin?"),
    ("marathons", "health", ["I ran my first marathon in {v}.",
                             "Finished my first marathon in {v}!"],
     "How long did it take me to complete the 42-kilometre race?"),
]  # fmt: skip
# recurring events: (pool, topic, statements that happened today, ... yesterday, question)
EVENTS: dict[str, tuple[str, str, list[str], list[str], str]] = {
    "hike": ("trails", "hobbies", [
        "Went hiking at {v} today, my legs are done.",
        "Spent the day on the trail at {v}, the views were unreal.",
        "Did the loop around {v} this afternoon, so muddy.",
    ], ["Yesterday I hiked up to {v} and I'm still sore.",
        "Did a long hike at {v} yesterday, totally worth it."], "Where did I go hiking {when}?"),
    "restaurant": ("restaurants", "food", [
        "Had dinner at {v} tonight, the food was great.",
        "Tried {v} for lunch today, cosy little place.",
    ], ["We ate at {v} yesterday, I'd go back.",
        "Yesterday's dinner at {v} was a bit overpriced."], "Which restaurant did I try {when}?"),
    "movie": ("movies", "hobbies", [
        "Watched {v} at the cinema today, still thinking about it.",
        "Saw {v} this evening, the ending got me.",
    ], ["Finally watched {v} yesterday, bit too long.",
        "Went to see {v} yesterday with popcorn and everything."],
        "Which film did I watch {when}?"),
    "concert": ("bands", "hobbies", [
        "Saw {v} live tonight, what a show.",
        "Went to the {v} concert today, my ears are ringing.",
    ], ["{v} played a gig in town yesterday and I went, amazing.",
        "Caught {v} live yesterday, the crowd was wild."], "Which band did I see live {when}?"),
    "museum": ("museums", "travel", [
        "Spent the afternoon at {v}, loved it.",
        "Visited {v} today, great exhibition.",
    ], ["Went to {v} yesterday, could have stayed all day.",
        "Yesterday I wandered around {v} for hours."], "Which museum did I visit {when}?"),
    "cook": ("dishes", "food", [
        "Cooked {v} for dinner tonight, turned out great.",
        "Made {v} this evening, the kitchen is a mess.",
    ], ["I made {v} yesterday and there are leftovers for days.",
        "Yesterday I tried cooking {v} for the first time."], "What did I cook {when}?"),
    "tennis": ("names", "health", [
        "Played tennis with {v} after work today, lost badly.",
        "Had a tennis match against {v} today, so close.",
    ], ["Played tennis with {v} yesterday, my shoulder hurts.",
        "{v} beat me at tennis yesterday, again."], "Who did I play tennis with {when}?"),
    "market": ("market", "home", [
        "Found {v} at the flea market today.",
        "Picked up {v} at the flea market earlier, a real bargain.",
    ], ["Got {v} at the flea market yesterday for almost nothing.",
        "Yesterday at the flea market I bought {v}."], "What did I buy at the flea market {when}?"),
}  # fmt: skip
# questions on things no conversation states, with a pattern that must not occur in its turns
NEVER_STATED: list[tuple[str, str]] = [
    ("What is the name of my dentist?", r"\bdentist"),
    ("What is my blood type?", r"\bblood\b"),
    ("Which airline did I fly with on my last work trip?", r"\bairline|\bfl(y|ew)\b"),
    ("What is my shoe size?", r"\bshoe"),
    ("What is my cat called?", r"\bcats?\b"),
    ("What did I name my horse?", r"\bhorse"),
    ("Which school does my son go to?", r"\bmy son\b"),
    ("Which bank do I use?", r"\bbank\b"),
    ("What was the name of my first teacher at school?", r"\bfirst teacher"),
    ("Which football team do I support?", r"\bfootball team|\bsupport"),
    ("What is my mother's maiden name?", r"\bmaiden|\bmother\b"),
    ("What is my husband's job?", r"\bhusband"),
    ("What did I name my boat?", r"\bboat"),
    ("Which hotel did I stay at in Rome?", r"\bRome\b"),
    ("How old is my grandmother?", r"\bgrandmother"),
    ("What is the name of my cleaner?", r"\bcleaner"),
]
# questions on a relation the conversation never mentions
NO_SUCH_REL = [
    "What does my {rel} do for a living?",
    "Which city does my {rel} live in?",
    "What is the name of my {rel}'s pet?",
]
# chit-chat: user lines and assistant replies per topic; {rel} is a relation the conversation
# uses, {day} a weekday; none names a value from the pools above
TOPICS = ["work", "family", "food", "travel", "pets", "hobbies", "health", "home"]
FILLER: dict[str, list[str]] = {
    "work": _split(
        "work was chaos today, back-to-back meetings.|my inbox is out of control this week.|"
        "the new project at work is finally moving.|I stayed late at the office again.|"
        "we had a team lunch at work, it was nice for once.|there's a big deadline on {day}.|"
        "my job has been quiet, which is suspicious.|I keep thinking about asking for a raise.|"
        "the office coffee machine broke again.|I presented to the whole department today.|"
        "working from home on {day} was so much better.|a colleague of mine is leaving soon."
    ),
    "family": _split(
        "my {rel} called me today, we talked for ages.|family dinner on {day} got loud.|"
        "I should visit my {rel} more often.|my {rel} sent me a funny video.|"
        "we're planning a family get-together in the summer.|my {rel} gave me advice again.|"
        "family group chat is blowing up about nothing.|I miss having everyone in one place.|"
        "my {rel} and I argued about politics, as usual.|I helped my {rel} move some furniture."
    ),
    "food": _split(
        "I had leftovers for lunch again.|I want to try a new restaurant soon.|"
        "dinner tonight was just a sandwich, lazy day.|I'm trying to cook more at home.|"
        "I ate way too much pizza on {day}.|the bakery near me has amazing bread.|"
        "I'm thinking of going vegetarian a few days a week.|I burned the rice, classic.|"
        "grocery prices are getting ridiculous.|I made soup with whatever was in the fridge."
    ),
    "travel": _split(
        "I'm itching to travel somewhere.|the train was delayed again this morning.|"
        "I keep browsing holiday ideas instead of working.|traffic on {day} was terrible.|"
        "I need to renew my passport at some point.|a road trip sounds amazing right now.|"
        "I found cheap train tickets for later in the year.|packing is my least favourite thing.|"
        "the city feels so busy with all the tourists.|I'd love a weekend away by the sea."
    ),
    "pets": _split(
        "the neighbour's dog barked all night.|I saw the cutest puppy at the park.|"
        "pets are so much work, but worth it.|a stray kitten keeps visiting our street.|"
        "I watched a documentary about parrots.|the pet shop down the road is closing.|"
        "my {rel} keeps sending me animal pictures.|I'd love a pet but the flat is too small.|"
        "dogs in the office would make work better.|the vet bills people pay are wild."
    ),
    "hobbies": _split(
        "I want to go hiking again soon.|I haven't been to the cinema in a while.|"
        "I started a puzzle that's way too hard.|I'm thinking about picking up a new hobby.|"
        "concert tickets are so expensive now.|I spent {day} evening reading.|"
        "I watched a movie at home and fell asleep.|I keep buying books I never read.|"
        "my playlist needs an update.|I tried drawing again, it was rough."
    ),
    "health": _split(
        "I slept terribly last night.|I skipped the gym again, oops.|"
        "my back hurts from sitting all day.|I'm trying to drink more water.|"
        "I went for a short run on {day}.|I think I'm coming down with a cold.|"
        "I did some stretching this morning.|I need a proper rest day.|"
        "my knee has been a bit sore lately.|I'm cutting down on sugar, slowly."
    ),
    "home": _split(
        "the flat is a total mess.|my phone battery dies so fast lately.|"
        "I finally did the laundry.|the heating is acting up again.|"
        "I rearranged the living room on {day}.|the neighbours are renovating, so loud.|"
        "I bought a new plant and it's already dying.|the internet was down for hours.|"
        "I need to fix the squeaky door.|cleaning the kitchen took forever."
    ),
}
REPLIES: dict[str, list[str]] = {
    "work": _split(
        "Work weeks like that are draining.|That sounds like a lot on your plate at work.|"
        "Jobs can be so unpredictable.|Meetings eat the whole day, don't they?|"
        "It sounds like work keeps you busy.|I hope the office gets calmer soon.|"
        "Colleagues can make or break a job."
    ),
    "family": _split(
        "Family always keeps things interesting.|It's lovely that you stay in touch with family.|"
        "Families can be a lot, but they're worth it.|That sounds like a close family.|"
        "It's nice to hear about your family.|Family news is always fun to hear."
    ),
    "food": _split(
        "Food is such a good mood booster.|That sounds delicious.|Cooking at home is so rewarding.|"
        "Nothing beats a good meal.|Trying new places to eat is half the fun.|"
        "I love hearing about food."
    ),
    "travel": _split(
        "Travel really clears the head.|Getting around can be such a hassle.|"
        "A trip sounds like a great idea.|New places are always exciting.|"
        "Cities like that are fun to explore.|Travelling takes planning, but it pays off."
    ),
    "pets": _split(
        "Animals make everything better.|Pets are such good company.|"
        "That's adorable.|Pets really become part of the family.|Animals are a lot of work.|"
        "I love a good pet story."
    ),
    "hobbies": _split(
        "How was the hike? Hiking in spring is lovely.|Hobbies are a great way to unwind.|"
        "That sounds like a fun way to spend time.|A good film or gig can make the week.|"
        "Getting outdoors is always worth it.|It's great to have something just for fun."
    ),
    "health": _split(
        "Taking care of yourself matters.|Rest is just as important as exercise.|"
        "Health comes first.|Small habits add up.|Listen to your body.|"
        "Staying active is great for your mood."
    ),
    "home": _split(
        "Home stuff never ends, does it?|A tidy home feels so good.|"
        "Flats always need something fixed.|Gadgets can be so frustrating.|"
        "It's nice to make a place feel like home.|Chores are never fun."
    ),
}
REPLY_TAILS = _split(
    "How are you feeling about it?|Anything else new?|Tell me more!|What's next for you?|"
    "Do you have plans for the weekend?|How did that go?|Hope the rest of the day is good.|"
    "Is that a big change for you?|What made you think of it?|Sounds like quite a week."
)
PERSON_REPLIES = _split(
    "Say hi to {name} for me!|{name} sounds like a great person.|It's nice that you and {name} "
    "are close.|Give {name} my best.|How is {name} doing otherwise?|{name} seems to keep busy."
)
PERSON_FILLER = _split(
    "had coffee with my {rel} {name} today, we mostly gossiped.|my {rel} {name} says hi.|"
    "I haven't heard from my {rel} {name} in a while.|my {rel} {name} and I went for a walk.|"
    "my {rel} {name} sent me a long voice message.|I owe my {rel} {name} a call."
)
OPENERS = [
    *_split(
        "So,|Honestly,|Okay,|Oh,|Well,|Anyway,|Random thought:|Quick update:|Ugh,|Hmm,|"
        "By the way,|Not much news, but|Funny thing,|You know what,"
    ),
    *["", "", ""],
]
CLOSERS = [
    *_split(
        "Anyway.|How are you?|Not much else to report.|Ha.|Just saying.|Long story.|"
        "What do you think?|Life, right?|Oh well.|Such is life."
    ),
    *["", "", "", ""],
]
GREETINGS = _split(
    "Hi again!|Hey, it's me.|Evening!|Hello, hello.|Back again, hi.|Hey there.|Good afternoon!|"
    "Hi, got a minute?|Hey, long day.|Hello again."
)
# wrappers that put a fact mid-sentence: {fact} keeps its own capitals
WRAPS = _split(
    "Long week at work, honestly. Oh, and {fact} Anyway, enough about that.|"
    "Still tired from the weekend. {fact} Life goes on.|"
    "The weather is grim again, by the way. Also, {fact}|"
    "Had way too much coffee today. Unrelated, but {fact} Anyway.|"
    "Funny, I was just thinking about this: {fact} Not that it matters much."
)
# words a paraphrase question may share with its evidence without counting
STOP = set(
    _split(
        "a|an|the|i|i'm|i've|me|my|mine|we|we're|our|us|you|your|it|its|it's|is|am|are|was|were|"
        "be|been|do|did|does|done|have|has|had|of|in|on|at|to|for|from|by|with|about|into|that|"
        "this|what|what's|which|who|whom|whose|where|when|how|why|there|here|and|or|but|so|not|"
        "no|up|out|as|than|then|just|also|really|very|some|any"
    )
)


def content(text: str) -> set[str]:
    """Content words, crudely stemmed (possessive and plural -s dropped)."""
    words = (w.removesuffix("'s") for w in re.findall(r"[a-z0-9'-]+", text.lower()))
    return {w[:-1] if len(w) > 3 and w.endswith("s") else w for w in words if w not in STOP}


def article(v: str) -> str:
    return ("an " if v[:1].lower() in "aeiou" else "a ") + v if v else ""


# relative time expressions: the days each names, and a day to ask on so it names a given one
RELATIVE = ["yesterday", "days ago", "last weekend", "last Saturday", "last week"]
RELATIVE += ["two weeks ago", "last month"]
DAY = timedelta(days=1)


def monday(d: date) -> date:
    return d - d.weekday() * DAY


def month_of(d: date) -> tuple[date, date]:
    first = d.replace(day=1)
    return first, (first + 31 * DAY).replace(day=1) - DAY


def window(expr: str, d: date) -> tuple[date, date] | None:
    """The days ``expr`` names when asked on day ``d`` (weeks run Monday to Sunday); None where
    it is unclear ("last weekend" asked Friday to Sunday)."""
    if expr == "yesterday" or expr.endswith("days ago"):
        n = 1 if expr == "yesterday" else int(expr.split()[0])
        return d - n * DAY, d - n * DAY
    if expr in ("last weekend", "last Saturday"):
        sat = monday(d) - 2 * DAY
        return None if d.weekday() > 3 else (sat, sat + DAY * (expr == "last weekend"))
    if expr in ("last week", "two weeks ago"):
        weeks = 1 if expr == "last week" else 2
        return monday(d) - 7 * weeks * DAY, monday(d) - (7 * weeks - 6) * DAY
    assert expr == "last month", expr
    return month_of(d.replace(day=1) - DAY)


def asked_day(rng: Random, expr: str, e: date) -> tuple[str, date] | None:
    """A day on which ``expr`` names the event day ``e``, with the expression (None: no such)."""
    wd, r = e.weekday(), rng.randrange(4)
    if expr == "yesterday":
        return expr, e + DAY
    if expr == "days ago":
        n = rng.randint(2, 6)
        return f"{n} days ago", e + n * DAY
    if (expr == "last weekend" and wd >= 5) or expr in ("last week", "two weeks ago"):
        return expr, monday(e) + ((14 if expr == "two weeks ago" else 7) + r) * DAY
    if expr == "last Saturday" and wd == 5:
        return expr, e + (2 + r) * DAY
    if expr == "last month":
        return expr, month_of(e)[1] + (1 + rng.randrange(10)) * DAY
    return None
